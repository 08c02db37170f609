"""Loader for the MovieLens rating datasets published by GroupLens."""

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._base import (
    RemoteArchive,
    _download,
    _extract_folder,
    _verify_local_archive,
    get_data_home,
)

__all__ = ["fetch_movielens"]

_BASE_URL = "https://files.grouplens.org/datasets/movielens/"

# SHA-256 of the official GroupLens archives. Source: tensorflow/datasets,
# tensorflow_datasets/url_checksums/movielens.txt (which also records the
# sizes: 4924029, 5917549, 198702078 and 978202 bytes); each value matches the
# one pinned by several other public repositories.
# ml-latest-small is a rolling release: the checksum pins the September 2018
# version (100,836 ratings); a newer upstream archive would be refused.
_CHECKSUMS = {
    "100k": "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    "1m": "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    "20m": "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
    "latest-small": "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
}

# Each variant is the archive ml-<variant>.zip, holding the folder ml-<variant>/.
ARCHIVES = {
    variant: RemoteArchive(
        filename=f"ml-{variant}.zip",
        url=f"{_BASE_URL}ml-{variant}.zip",
        checksum=checksum,
        folder=f"ml-{variant}",
    )
    for variant, checksum in _CHECKSUMS.items()
}

VARIANTS = tuple(ARCHIVES)

_REQUIRED_FILES = {
    "100k": ("u.data", "u.item", "u.user"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
    "20m": ("ratings.csv", "movies.csv"),
    "latest-small": ("ratings.csv", "movies.csv"),
}

GENRES_100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
GENRES_1M = GENRES_100K[1:]
GENRES_CSV = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_NO_GENRE = "(no genres listed)"

# Occupation codes of ml-1m/users.dat (from the archive's README).
OCCUPATIONS_1M = [
    "other", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care",
    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip

_INTERACTION_COLUMNS = ["user", "item", "rating", "timestamp"]
_USER_COLUMNS = ["age", "gender", "occupation", "zip"]
_YEAR_RE = r"\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$"

_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: "
    "History and Context. ACM Transactions on Interactive Intelligent Systems "
    "(TiiS) 5, 4, Article 19 (December 2015), 19 pages. "
    "https://doi.org/10.1145/2827872"
)

_SUMMARY = {
    "100k": (
        "MovieLens 100K: 100,000 ratings (integers 1-5) from 943 users on "
        "1,682 movies, collected by GroupLens Research through the MovieLens "
        "web site in 1997-1998. Each user rated at least 20 movies. Users come "
        "with age, gender, occupation and zip code; movies with title, release "
        "year and 19 genre flags (including 'unknown')."
    ),
    "1m": (
        "MovieLens 1M: 1,000,209 ratings (integers 1-5) of about 3,900 movies "
        "by 6,040 users who joined MovieLens in 2000. Each user rated at least "
        "20 movies. Users come with gender, age (a bucket: 1, 18, 25, 35, 45, "
        "50 or 56, the lower bound of the age range), occupation and zip code; "
        "movies with title, year and 18 genres."
    ),
    "20m": (
        "MovieLens 20M: 20,000,263 ratings (0.5-5 stars in half-star steps) "
        "across 27,278 movies by 138,493 users, between January 1995 and March "
        "2015 (released 4/2015, updated 10/2016). No user demographics. "
        "Movies come with title, year and 19 genres (plus '(no genres listed)', "
        "encoded here as all genre columns 0)."
    ),
    "latest-small": (
        "MovieLens latest-small: 100,836 ratings (0.5-5 stars in half-star "
        "steps) on 9,742 movies by 610 users, between March 1996 and September "
        "2018 (version generated September 2018). No user demographics. "
        "Movies come with title, year and 19 genres (plus '(no genres listed)', "
        "encoded here as all genre columns 0)."
    ),
}

_TERMS = {
    "100k": (
        "The data may be used for research purposes only. The user may not "
        "state or imply any endorsement from the University of Minnesota or "
        "the GroupLens Research Group, must acknowledge the use of the data "
        "set in publications (see the citation below), may NOT redistribute "
        "the data without separate permission, and may not use it for any "
        "commercial or revenue-bearing purposes without first obtaining "
        "permission from GroupLens."
    ),
    "20m": (
        "The data may be used for research purposes. The user may not state or "
        "imply any endorsement from the University of Minnesota or the "
        "GroupLens Research Group, must acknowledge the use of the data set in "
        "publications (see the citation below), may redistribute the data set "
        "(including transformations) only under these same license "
        "conditions, and may not use it for commercial or revenue-bearing "
        "purposes without permission from GroupLens."
    ),
}
_TERMS["1m"] = _TERMS["100k"]
_TERMS["latest-small"] = _TERMS["20m"]


def _descr(variant):
    archive = ARCHIVES[variant]
    return (
        f".. _movielens_{variant.replace('-', '_')}_dataset:\n\n"
        f"MovieLens {variant} dataset\n"
        f"{'-' * (len(variant) + 19)}\n\n"
        f"{_SUMMARY[variant]}\n\n"
        f"Source: {archive.url} (GroupLens Research, University of Minnesota; "
        "https://grouplens.org/datasets/movielens/). The archive is not "
        "shipped with sklearn_recsys: it is downloaded from GroupLens and its "
        "SHA-256 checked.\n\n"
        f"Terms of use (see the README in the archive): {_TERMS[variant]}\n\n"
        f"Citation: {_CITATION}\n"
    )


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------


def _corrupt(path, problem):
    return ValueError(
        f"{path}: {problem}. The file is corrupted or not in the original "
        "MovieLens layout; delete its folder (and archive) from the data home "
        "and fetch the data again."
    )


def _read_table(
    path,
    names,
    *,
    sep,
    header=False,
    encoding="utf-8",
    quoting=csv.QUOTE_MINIMAL,
    str_cols=(),
    text=None,
):
    """Read a delimited file with the pandas C parser and check its shape.

    ``names`` are the expected columns. With ``header=True`` the first line
    must hold exactly these names. ``text`` replaces the file content (already
    decoded and pre-processed, e.g. ``'::'`` replaced by a single separator).
    Empty fields are kept as ``""`` (never parsed as NaN), so a missing value
    in a numeric column is reported by :func:`_as_int` / :func:`_as_float`.
    """
    if str_cols:
        # Small metadata files: with keep_default_na=False pandas turns the
        # fields missing from a short line into "", so count fields first.
        if text is None:
            try:
                with open(path, encoding=encoding, newline="") as f:
                    text = f.read()
            except UnicodeDecodeError as exc:
                raise _corrupt(
                    path, f"cannot decode the file as {encoding}: {exc}"
                ) from None
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=sep, quoting=quoting
        )
        for row in reader:
            if row and len(row) != len(names):
                raise _corrupt(
                    path,
                    f"line {reader.line_num} has {len(row)} fields, expected "
                    f"{len(names)} ({', '.join(names)})",
                )
    source = io.StringIO(text) if text is not None else path
    dtype = {i: str for i, name in enumerate(names) if name in str_cols}
    try:
        df = pd.read_csv(
            source,
            sep=sep,
            header=0 if header else None,
            encoding=None if text is not None else encoding,
            quoting=quoting,
            keep_default_na=False,
            dtype=dtype or None,
            engine="c",
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raise _corrupt(path, "the file is empty") from None
    except pd.errors.ParserError as exc:
        raise _corrupt(
            path, f"wrong number of fields (expected {len(names)}): {exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise _corrupt(path, f"cannot decode the file as {encoding}: {exc}") from None
    if header:
        if list(df.columns) != list(names):
            raise _corrupt(
                path,
                f"expected the header {','.join(names)!r}, got "
                f"{','.join(map(str, df.columns))!r}",
            )
    elif df.shape[1] != len(names):
        raise _corrupt(
            path, f"expected {len(names)} fields per line, found {df.shape[1]}"
        )
    else:
        df.columns = list(names)
    if len(df) == 0:
        raise _corrupt(path, "the file has no data rows")
    return df


def _first_bad(path, series, bad, kind):
    row = int(np.flatnonzero(bad)[0])
    value = series.iloc[row]
    if pd.isna(value) or value == "":
        value = "an empty or missing field"
    else:
        value = repr(value)
    return _corrupt(
        path,
        f"data row {row + 1}, column {series.name!r}: expected {kind}, got {value}",
    )


def _as_int(path, series):
    """Convert a column to int64, naming the first bad value on failure."""
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.astype(np.int64)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        raise _first_bad(path, series, bad, "an integer")
    return pd.Series(values.astype(np.int64), index=series.index, name=series.name)


def _as_float(path, series):
    """Convert a column to float64, naming the first bad value on failure."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    ):
        values = series.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise _first_bad(path, series, bad, "a number")
    return pd.Series(values, index=series.index, name=series.name)


def _interactions(path, df):
    out = pd.DataFrame(
        {
            "user": _as_int(path, df["user"]),
            "item": _as_int(path, df["item"]),
            "rating": _as_float(path, df["rating"]),
            "timestamp": _as_int(path, df["timestamp"]),
        }
    )
    return out.reset_index(drop=True)


def _set_index(path, df, ids, name):
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise _corrupt(path, f"the {name} id {dup} appears more than once")
    df.index = pd.Index(ids.to_numpy(), name=name)
    return df


def _year(titles):
    return titles.str.extract(_YEAR_RE, expand=False).astype("Int64").rename("year")


def _genres_from_strings(genres, canonical):
    """Multi-hot encode '|'-separated genre strings.

    Columns follow ``canonical`` (all of them, even if absent), then any
    unexpected genre in alphabetical order. '(no genres listed)' and empty
    strings give a row of zeros.
    """
    dummies = genres.str.get_dummies(sep="|")
    dummies = dummies.drop(columns=[_NO_GENRE, ""], errors="ignore")
    extra = sorted(c for c in dummies.columns if c not in canonical)
    columns = list(canonical) + extra
    return dummies.reindex(columns=columns, fill_value=0).astype(np.int64)


def _items_frame(path, ids, titles, genre_frame):
    items = pd.concat(
        [
            titles.rename("title").reset_index(drop=True),
            _year(titles).reset_index(drop=True),
            genre_frame.reset_index(drop=True),
        ],
        axis=1,
    )
    return _set_index(path, items, ids.reset_index(drop=True), "item")


def _read_dat(path, names, str_cols=()):
    """Read a ``::``-separated ml-1m file (latin-1) with the C parser."""
    with open(path, encoding="latin-1") as f:
        text = f.read()
    if "\x1f" in text:
        raise _corrupt(path, "unexpected control character \\x1f")
    return _read_table(
        path,
        names,
        sep="\x1f",
        quoting=csv.QUOTE_NONE,
        str_cols=str_cols,
        text=text.replace("::", "\x1f"),
    )


def _parse_100k(folder):
    path = folder / "u.data"
    ratings = _read_table(path, _INTERACTION_COLUMNS, sep="\t")
    interactions = _interactions(path, ratings)

    path = folder / "u.item"
    names = ["item", "title", "release_date", "video_release_date", "imdb_url"]
    names += GENRES_100K
    raw = _read_table(
        path,
        names,
        sep="|",
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        str_cols=names[1:5],
    )
    flags = pd.DataFrame({g: _as_int(path, raw[g]) for g in GENRES_100K})
    bad = ~flags.isin([0, 1]).to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise _corrupt(
            path,
            f"data row {row + 1}, genre {GENRES_100K[col]!r}: expected 0 or 1, "
            f"got {flags.iat[row, col]}",
        )
    items = _items_frame(path, _as_int(path, raw["item"]), raw["title"], flags)

    path = folder / "u.user"
    names = ["user"] + _USER_COLUMNS
    raw = _read_table(path, names, sep="|", quoting=csv.QUOTE_NONE, str_cols=names[2:])
    users = pd.DataFrame(
        {
            "age": _as_int(path, raw["age"]),
            "gender": raw["gender"],
            "occupation": raw["occupation"],
            "zip": raw["zip"],
        }
    )
    users = _set_index(path, users, _as_int(path, raw["user"]), "user")
    return interactions, items, users, list(GENRES_100K)


def _parse_1m(folder):
    path = folder / "ratings.dat"
    interactions = _interactions(path, _read_dat(path, _INTERACTION_COLUMNS))

    path = folder / "movies.dat"
    raw = _read_dat(path, ["item", "title", "genres"], str_cols=["title", "genres"])
    genre_frame = _genres_from_strings(raw["genres"], GENRES_1M)
    items = _items_frame(path, _as_int(path, raw["item"]), raw["title"], genre_frame)

    path = folder / "users.dat"
    names = ["user", "gender", "age", "occupation", "zip"]
    raw = _read_dat(path, names, str_cols=["gender", "zip"])
    codes = _as_int(path, raw["occupation"])
    known = (codes >= 0) & (codes < len(OCCUPATIONS_1M))
    occupation = codes.astype(str)
    occupation[known] = np.asarray(OCCUPATIONS_1M, dtype=object)[codes[known]]
    users = pd.DataFrame(
        {
            "age": _as_int(path, raw["age"]),
            "gender": raw["gender"],
            "occupation": occupation.astype(object),
            "zip": raw["zip"],
        }
    )
    users = _set_index(path, users, _as_int(path, raw["user"]), "user")
    return interactions, items, users, list(genre_frame.columns)


def _parse_csv(folder):
    path = folder / "ratings.csv"
    raw = _read_table(
        path, ["userId", "movieId", "rating", "timestamp"], sep=",", header=True
    )
    raw.columns = _INTERACTION_COLUMNS
    interactions = _interactions(path, raw)

    path = folder / "movies.csv"
    raw = _read_table(
        path,
        ["movieId", "title", "genres"],
        sep=",",
        header=True,
        str_cols=["title", "genres"],
    )
    genre_frame = _genres_from_strings(raw["genres"], GENRES_CSV)
    items = _items_frame(path, _as_int(path, raw["movieId"]), raw["title"], genre_frame)
    return interactions, items, None, list(genre_frame.columns)


_PARSERS = {
    "100k": _parse_100k,
    "1m": _parse_1m,
    "20m": _parse_csv,
    "latest-small": _parse_csv,
}


def _missing_files(folder, variant):
    return [name for name in _REQUIRED_FILES[variant] if not (folder / name).is_file()]


def fetch_movielens(
    variant="100k", *, data_home=None, download_if_missing=True, as_frame=True
):
    """Load a MovieLens rating dataset, downloading it from GroupLens if needed.

    The loader looks, in this order, for the extracted folder
    ``data_home/<folder>`` (``ml-100k``, ``ml-1m``, ``ml-20m`` or
    ``ml-latest-small``, as in the official archives), then for the archive
    ``data_home/<folder>.zip`` (its SHA-256 is checked, then it is extracted),
    and finally downloads the archive from https://files.grouplens.org when
    ``download_if_missing`` is True (the SHA-256 of the download is checked
    before extraction; a mismatching file is deleted and an ``OSError``
    raised). Downloaded archives are deleted once extracted.

    ==================  ==========  =======  =======  ===============
    variant             ratings     users    items    rating values
    ==================  ==========  =======  =======  ===============
    ``"100k"``          100,000     943      1,682    1, 2, ..., 5
    ``"1m"``            1,000,209   6,040    3,883    1, 2, ..., 5
    ``"20m"``           20,000,263  138,493  27,278   0.5, 1, ..., 5
    ``"latest-small"``  100,836     610      9,742    0.5, 1, ..., 5
    ==================  ==========  =======  =======  ===============

    The MovieLens data may not be redistributed with this package; read
    ``DESCR`` for the terms of use and the citation.

    Parameters
    ----------
    variant : {"100k", "1m", "20m", "latest-small"}, default="100k"
        Which MovieLens release to load.

    data_home : str or path-like, default=None
        Folder where the datasets are cached. By default
        ``~/sklearn_recsys_data`` (see :func:`get_data_home`).

    download_if_missing : bool, default=True
        If False, raise an ``OSError`` instead of downloading when the data
        is not in ``data_home``.

    as_frame : bool, default=True
        If True, ``interactions`` is a pandas DataFrame. If False, it is a
        dict mapping each column name (``"user"``, ``"item"``, ``"rating"``,
        ``"timestamp"``) to a 1-D numpy array. ``item_info`` and ``user_info``
        are DataFrames in both cases (they hold strings).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        interactions : DataFrame of shape (n_ratings, 4) or dict of arrays
            Columns ``user`` and ``item`` (int64, raw MovieLens ids),
            ``rating`` (float64, as given) and ``timestamp`` (int64, seconds
            since the Unix epoch), in the order of the ratings file.
        item_info : DataFrame of shape (n_items, 2 + n_genres)
            Indexed by item id: ``title`` (as given, with the year),
            ``year`` (nullable Int64 parsed from the title, ``<NA>`` when
            absent) and one 0/1 int64 column per genre (multi-hot). (Not
            called ``items``: ``Bunch.items`` is the dict method.)
        user_info : DataFrame of shape (n_users, 4) or None
            Indexed by user id: ``age`` (int64; a bucket lower bound for
            "1m"), ``gender``, ``occupation`` and ``zip``. None for "20m" and
            "latest-small", which have no user file.
        genres : list of str
            Names of the genre columns of ``item_info``.
        variant : str
            The loaded variant.
        DESCR : str
            Description of the dataset, terms of use and citation.

    Raises
    ------
    ValueError
        If ``variant`` is unknown or a data file is corrupted.
    OSError
        If the data is missing and ``download_if_missing=False``, a required
        file is missing, the download fails, or a checksum does not match.

    Examples
    --------
    >>> from sklearn_recsys.datasets import fetch_movielens
    >>> ml = fetch_movielens("100k")  # doctest: +SKIP
    >>> ml.interactions.shape  # doctest: +SKIP
    (100000, 4)
    >>> ml.interactions.columns.tolist()  # doctest: +SKIP
    ['user', 'item', 'rating', 'timestamp']
    >>> len(ml.genres), ml.user_info.shape  # doctest: +SKIP
    (19, (943, 4))
    """
    if not isinstance(variant, str) or variant not in ARCHIVES:
        raise ValueError(
            f"Unknown MovieLens variant {variant!r}; valid variants are "
            + ", ".join(repr(v) for v in ARCHIVES)
            + "."
        )
    for name, value in [
        ("download_if_missing", download_if_missing),
        ("as_frame", as_frame),
    ]:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}.")

    archive = ARCHIVES[variant]
    data_home = Path(get_data_home(data_home))
    folder = data_home / archive.folder
    required = _REQUIRED_FILES[variant]

    missing = _missing_files(folder, variant)
    if missing:
        zip_path = data_home / archive.filename
        if zip_path.is_file():
            _verify_local_archive(zip_path, archive)
            _extract_folder(zip_path, archive.folder, data_home, required)
        elif download_if_missing:
            tmp = _download(archive, data_home)
            try:
                _extract_folder(tmp, archive.folder, data_home, required)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            if folder.is_dir():
                where = f"the folder {folder} lacks " + ", ".join(missing)
            else:
                where = f"neither the folder {folder} nor the archive {zip_path} exists"
            raise OSError(
                f"MovieLens-{variant} data not found: {where}. Call "
                f"fetch_movielens({variant!r}, download_if_missing=True) to "
                f"download it from {archive.url}, or put the archive "
                f"{archive.filename} (or its extracted folder {archive.folder}/ "
                f"with {', '.join(required)}) in data_home={str(data_home)!r}."
            )
        missing = _missing_files(folder, variant)
        if missing:  # pragma: no cover - guarded by _extract_folder
            raise OSError(f"{folder} lacks {', '.join(missing)} after extraction.")

    interactions, items, users, genres = _PARSERS[variant](folder)
    if not as_frame:
        interactions = {c: interactions[c].to_numpy() for c in interactions.columns}
    return Bunch(
        interactions=interactions,
        item_info=items,
        user_info=users,
        genres=genres,
        variant=variant,
        DESCR=_descr(variant),
    )
