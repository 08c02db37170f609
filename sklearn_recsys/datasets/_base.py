"""Data home management and download helpers shared by the dataset loaders."""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import namedtuple
from pathlib import Path, PurePosixPath

__all__ = ["get_data_home", "clear_data_home"]

#: Name of the environment variable that overrides the default data home.
DATA_HOME_ENV = "SKLEARN_RECSYS_DATA"

RemoteArchive = namedtuple("RemoteArchive", ["filename", "url", "checksum", "folder"])
RemoteArchive.__doc__ = """Metadata of a remote zip archive.

filename : name of the archive in the data home (e.g. ``"ml-100k.zip"``).
url : where to download it from.
checksum : expected SHA-256 hex digest, or None when unknown (not verified).
folder : top-level folder inside the archive, extracted to ``data_home/folder``.
"""


def _check_data_home_type(data_home):
    if data_home is not None and not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            "data_home must be None, a str or a path-like object, got "
            f"{data_home!r} of type {type(data_home).__name__}."
        )


def get_data_home(data_home=None):
    """Return the path of the sklearn_recsys data directory.

    The folder caches the downloaded datasets so that they are fetched only
    once. By default it is ``~/sklearn_recsys_data``; the environment variable
    ``SKLEARN_RECSYS_DATA`` or the ``data_home`` argument override it. ``~`` is
    expanded to the user's home folder and the folder is created if missing.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The path to the data directory. If None, use ``SKLEARN_RECSYS_DATA``
        when set, else ``~/sklearn_recsys_data``.

    Returns
    -------
    data_home : str
        The path to the data directory (it exists on return).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_recsys.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = get_data_home(os.path.join(tmp, "recsys_data"))
    ...     os.path.isdir(path)
    True
    """
    _check_data_home_type(data_home)
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or os.path.join(
            "~", "sklearn_recsys_data"
        )
    data_home = os.path.expanduser(os.fspath(data_home))
    os.makedirs(data_home, exist_ok=True)
    return data_home


def clear_data_home(data_home=None):
    """Delete the data directory and all its content.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The path to the data directory to delete; None means the default
        one, as for :func:`get_data_home`.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_recsys.datasets import clear_data_home, get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = get_data_home(os.path.join(tmp, "recsys_data"))
    ...     clear_data_home(path)
    ...     os.path.exists(path)
    False
    """
    data_home = get_data_home(data_home)
    shutil.rmtree(data_home)


def _sha256(path, chunk_size=1 << 20):
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(archive, data_home, timeout=60.0):
    """Download ``archive.url`` to a temporary file in ``data_home``.

    The SHA-256 of the download is checked against ``archive.checksum``; on a
    mismatch the file is deleted and an ``OSError`` is raised. Returns the
    path of the verified temporary file (the caller deletes it).
    """
    fd, tmp_path = tempfile.mkstemp(
        prefix=f".{archive.filename}.", suffix=".part", dir=data_home
    )
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(archive.url, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise OSError(
                    f"Could not download {archive.url}: {exc}. If this machine is "
                    f"offline, copy {archive.filename} (or its extracted folder "
                    f"{archive.folder}/) into {data_home} and call again."
                ) from exc
            with response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        got = digest.hexdigest()
        if archive.checksum is not None and got != archive.checksum:
            raise OSError(
                f"Checksum mismatch for {archive.url}: expected SHA-256 "
                f"{archive.checksum}, got {got}. The corrupted download was "
                "deleted; retry later, or download the archive yourself, check "
                f"it and place it in {data_home} as {archive.filename}."
            )
    except BaseException:
        Path(tmp_path).unlink(missing_ok=True)
        raise
    return Path(tmp_path)


def _verify_local_archive(path, archive):
    """Check the SHA-256 of an archive the user placed in the data home."""
    if archive.checksum is None:
        return
    got = _sha256(path)
    if got != archive.checksum:
        raise OSError(
            f"Checksum mismatch for {path}: expected SHA-256 {archive.checksum}, "
            f"got {got}. The archive is corrupted or not the official "
            f"{archive.filename}; delete it (it will be downloaded again with "
            f"download_if_missing=True) or replace it with the file from "
            f"{archive.url}."
        )


def _extract_folder(zip_path, folder, data_home, required=()):
    """Extract the members under ``folder/`` of a zip archive into data_home.

    Members are first extracted to a temporary folder inside ``data_home`` and
    then moved into ``data_home/folder`` (existing files are replaced), so an
    interrupted extraction never leaves a half-written file behind. Members
    outside ``folder/`` (e.g. ``__MACOSX/``) and unsafe paths are ignored.
    """
    data_home = Path(data_home)
    target = data_home / folder
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise OSError(
            f"{zip_path} is not a valid zip archive ({exc}); delete it and "
            "fetch the data again."
        ) from exc
    with zf, tempfile.TemporaryDirectory(prefix=f".{folder}.", dir=data_home) as tmp:
        names = set()
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if (
                info.is_dir()
                or len(parts) < 2
                or parts[0] != folder
                or any(p in ("", ".", "..") for p in parts)
                or info.filename.startswith("/")
                or "\\" in info.filename
            ):
                continue
            rel = Path(*parts[1:])
            dest = Path(tmp) / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
            names.add(rel.as_posix())
        missing = [name for name in required if name not in names]
        if missing:
            raise OSError(
                f"The archive {zip_path} does not contain "
                + ", ".join(f"{folder}/{m}" for m in missing)
                + "; it is not a valid copy of the dataset. Delete it and fetch "
                "the data again."
            )
        for rel in sorted(names):
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp) / rel, dest)
    return target
