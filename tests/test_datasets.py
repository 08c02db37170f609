"""Tests for sklearn_recsys.datasets (MovieLens loader and synthetic data)."""

import hashlib
import io
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from sklearn_recsys.datasets import (
    _movielens,
    clear_data_home,
    fetch_movielens,
    get_data_home,
    make_interactions,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ML100K = SHARED_DATA / "ml-100k"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail loudly if any test tries to reach the network."""

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# ---------------------------------------------------------------------------
# Small synthetic copies of the original MovieLens layouts
# ---------------------------------------------------------------------------

FILES = {
    "100k": {
        "u.data": b"3\t10\t4\t881250949\n1\t20\t1\t891717742\n3\t20\t5\t878887116\n",
        "u.item": (
            "10|Caf\xe9 Society (1995)|01-Jan-1995||http://x|"
            + "|".join(["0", "1", "1"] + ["0"] * 16)
            + "\n20|unknown||||"
            + "|".join(["1"] + ["0"] * 18)
            + "\n"
        ).encode("latin-1"),
        "u.user": b"1|24|M|technician|85711\n3|53|F|other|T8H1N\n",
    },
    "1m": {
        "ratings.dat": (
            b"1::1193::5::978300760\n2::661::3::978302109\n1::661::4::978301968\n"
        ),
        "movies.dat": (
            "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
            "661::Am\xe9lie (2001)::Comedy|Romance|Sci-Fi\n"
        ).encode("latin-1"),
        "users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n",
    },
    "latest-small": {
        "ratings.csv": (
            b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
            b"1,3,3.5,964981247\n2,1,0.5,964982224\n"
        ),
        "movies.csv": (
            "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n"
            '3,"American President, The (1995)",Comedy|Drama|Romance\n'
            "7,Untitled,(no genres listed)\n"
        ).encode("utf-8"),
    },
}
FILES["20m"] = {
    "ratings.csv": (
        b"userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n"
    ),
    "movies.csv": (
        "movieId,title,genres\n2,Jumanji (1995),Adventure|Children|Fantasy\n"
        '29,"City of Lost Children, The (Cit\xe9 des enfants perdus, La) (1995)",'
        "Adventure|Drama|Fantasy|Mystery|Sci-Fi|IMAX\n"
    ).encode("utf-8"),
}

EXPECTED = {
    "100k": dict(
        users=[3, 1, 3],
        items=[10, 20, 20],
        ratings=[4.0, 1.0, 5.0],
        n_genres=19,
        n_items=2,
        n_users=2,
    ),
    "1m": dict(
        users=[1, 2, 1],
        items=[1193, 661, 661],
        ratings=[5.0, 3.0, 4.0],
        n_genres=18,
        n_items=2,
        n_users=2,
    ),
    "latest-small": dict(
        users=[1, 1, 2],
        items=[1, 3, 1],
        ratings=[4.0, 3.5, 0.5],
        n_genres=19,
        n_items=3,
        n_users=None,
    ),
    "20m": dict(
        users=[1, 1],
        items=[2, 29],
        ratings=[3.5, 3.5],
        n_genres=19,
        n_items=2,
        n_users=None,
    ),
}

VARIANTS = ["100k", "1m", "latest-small", "20m"]


def write_folder(data_home, variant, overrides=None):
    folder = Path(data_home) / _movielens.ARCHIVES[variant].folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in {**FILES[variant], **(overrides or {})}.items():
        if content is not None:
            (folder / name).write_bytes(content)
    return folder


def make_zip(path, variant, extra=None):
    folder = _movielens.ARCHIVES[variant].folder
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{folder}/", "")
        for name, content in FILES[variant].items():
            zf.writestr(f"{folder}/{name}", content)
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pin_checksum(monkeypatch, variant, checksum):
    archive = _movielens.ARCHIVES[variant]._replace(checksum=checksum)
    monkeypatch.setitem(_movielens.ARCHIVES, variant, archive)


def check_parsed(data, variant):
    exp = EXPECTED[variant]
    df = data.interactions
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert [str(t) for t in df.dtypes] == ["int64", "int64", "float64", "int64"]
    assert df["user"].tolist() == exp["users"]
    assert df["item"].tolist() == exp["items"]
    assert df["rating"].tolist() == exp["ratings"]
    assert data.variant == variant
    assert len(data.genres) == exp["n_genres"]
    items = data.item_info
    assert items.index.name == "item"
    assert list(items.columns) == ["title", "year"] + data.genres
    assert len(items) == exp["n_items"]
    genre_values = items[data.genres].to_numpy()
    assert genre_values.dtype == np.int64
    assert set(np.unique(genre_values)) <= {0, 1}
    if exp["n_users"] is None:
        assert data.user_info is None
    else:
        assert list(data.user_info.columns) == ["age", "gender", "occupation", "zip"]
        assert len(data.user_info) == exp["n_users"]
    assert "Harper" in data.DESCR and "Konstan" in data.DESCR
    assert "redistribut" in data.DESCR


# ---------------------------------------------------------------------------
# Real MovieLens-100K copy
# ---------------------------------------------------------------------------


def _require_real_100k():
    if not (ML100K / "u.data").is_file():
        pytest.skip(
            "MovieLens-100K not found at ../shared/data/ml-100k; place the "
            "extracted ml-100k folder there to run this test."
        )


def test_fetch_movielens_real_100k():
    _require_real_100k()
    data = fetch_movielens("100k", data_home=SHARED_DATA, download_if_missing=False)
    df = data.interactions
    assert df.shape == (100_000, 4)
    assert df["user"].nunique() == 943
    assert df["item"].nunique() == 1682
    assert sorted(df["rating"].unique()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert df.iloc[0].tolist() == [196, 242, 3, 881250949]
    assert len(data.genres) == 19
    assert data.genres[0] == "unknown" and data.genres[-1] == "Western"
    items = data.item_info
    assert items.shape == (1682, 21)
    assert set(np.unique(items[data.genres].to_numpy())) == {0, 1}
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "year"] == 1995
    assert items.loc[1, ["Animation", "Children's", "Comedy"]].tolist() == [1, 1, 1]
    assert data.user_info.shape == (943, 4)
    assert data.user_info.loc[1].tolist() == [24, "M", "technician", "85711"]


def test_fetch_movielens_real_100k_as_arrays():
    _require_real_100k()
    data = fetch_movielens(
        "100k", data_home=str(SHARED_DATA), download_if_missing=False, as_frame=False
    )
    assert set(data.interactions) == {"user", "item", "rating", "timestamp"}
    assert data.interactions["user"].dtype == np.int64
    assert data.interactions["rating"].dtype == np.float64
    assert data.interactions["item"].shape == (100_000,)


# ---------------------------------------------------------------------------
# Synthetic layouts, archives and checksums
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_parse_extracted_folder(tmp_path, variant):
    write_folder(tmp_path, variant)
    data = fetch_movielens(variant, data_home=tmp_path, download_if_missing=False)
    check_parsed(data, variant)


def test_parse_details(tmp_path):
    for variant in VARIANTS:
        write_folder(tmp_path, variant)
    ml = fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    assert ml.item_info.loc[10, "title"] == "Café Society (1995)"
    assert ml.item_info.loc[10, ["Action", "Adventure", "Animation"]].tolist() == [
        1,
        1,
        0,
    ]
    assert pd.isna(ml.item_info.loc[20, "year"])
    assert ml.user_info.loc[3, "zip"] == "T8H1N"

    ml = fetch_movielens("1m", data_home=tmp_path, download_if_missing=False)
    assert ml.item_info.loc[661, "title"] == "Amélie (2001)"
    assert ml.item_info.loc[661, ["Comedy", "Romance", "Sci-Fi"]].tolist() == [1, 1, 1]
    assert ml.item_info.loc[661, "year"] == 2001
    assert ml.user_info.loc[1].tolist() == [1, "F", "K-12 student", "48067"]
    assert ml.user_info.loc[2, "occupation"] == "self-employed"

    ml = fetch_movielens("latest-small", data_home=tmp_path, download_if_missing=False)
    assert ml.item_info.loc[3, "title"] == "American President, The (1995)"
    assert ml.item_info.loc[7, ml.genres].sum() == 0  # (no genres listed)
    assert pd.isna(ml.item_info.loc[7, "year"])

    ml = fetch_movielens("20m", data_home=tmp_path, download_if_missing=False)
    assert ml.item_info.loc[29, "IMAX"] == 1
    assert ml.item_info.loc[29, "year"] == 1995


@pytest.mark.parametrize("variant", VARIANTS)
def test_local_archive_is_verified_and_extracted(tmp_path, monkeypatch, variant):
    archive = _movielens.ARCHIVES[variant]
    checksum = make_zip(tmp_path / archive.filename, variant)
    pin_checksum(monkeypatch, variant, checksum)
    data = fetch_movielens(variant, data_home=tmp_path, download_if_missing=False)
    check_parsed(data, variant)
    assert (tmp_path / archive.folder / next(iter(FILES[variant]))).is_file()


def test_local_archive_wrong_checksum_refused(tmp_path):
    # The real checksum table is used: a home-made archive cannot match it.
    make_zip(tmp_path / "ml-100k.zip", "100k")
    with pytest.raises(OSError, match="Checksum mismatch") as exc:
        fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    assert _movielens.ARCHIVES["100k"].checksum in str(exc.value)
    assert "got" in str(exc.value)
    assert not (tmp_path / "ml-100k").exists()


def test_archive_unsafe_members_ignored(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    extra = {
        "ml-1m/../../evil.txt": "x",
        "__MACOSX/ml-1m/._ratings.dat": "x",
        "ml-1m/README": "readme",
    }
    checksum = make_zip(home / "ml-1m.zip", "1m", extra=extra)
    pin_checksum(monkeypatch, "1m", checksum)
    data = fetch_movielens("1m", data_home=home, download_if_missing=False)
    check_parsed(data, "1m")
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(os.listdir(home)) == ["ml-1m", "ml-1m.zip"]
    assert (home / "ml-1m" / "README").read_text() == "readme"


def test_archive_missing_member(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "ml-1m.zip", "w") as zf:
        zf.writestr("ml-1m/ratings.dat", FILES["1m"]["ratings.dat"])
    checksum = hashlib.sha256((tmp_path / "ml-1m.zip").read_bytes()).hexdigest()
    pin_checksum(monkeypatch, "1m", checksum)
    with pytest.raises(OSError, match=r"ml-1m/movies\.dat"):
        fetch_movielens("1m", data_home=tmp_path, download_if_missing=False)


class _FakeResponse(io.BytesIO):
    pass


def _serve(monkeypatch, payload, calls):
    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return _FakeResponse(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def test_download_good_checksum(tmp_path, monkeypatch):
    source = tmp_path / "served.zip"
    checksum = make_zip(source, "latest-small")
    pin_checksum(monkeypatch, "latest-small", checksum)
    calls = []
    _serve(monkeypatch, source.read_bytes(), calls)
    home = tmp_path / "home"
    data = fetch_movielens("latest-small", data_home=home)
    check_parsed(data, "latest-small")
    assert calls == [_movielens.ARCHIVES["latest-small"].url]
    assert sorted(os.listdir(home)) == ["ml-latest-small"]  # no temp file left
    # second call reads the extracted folder, no download
    fetch_movielens("latest-small", data_home=home)
    assert len(calls) == 1


def test_download_wrong_checksum_refused(tmp_path, monkeypatch):
    source = tmp_path / "served.zip"
    make_zip(source, "100k")
    calls = []
    _serve(monkeypatch, source.read_bytes(), calls)
    home = tmp_path / "home"
    with pytest.raises(OSError, match="Checksum mismatch") as exc:
        fetch_movielens("100k", data_home=home)
    msg = str(exc.value)
    assert _movielens.ARCHIVES["100k"].checksum in msg
    assert hashlib.sha256(source.read_bytes()).hexdigest() in msg
    assert os.listdir(home) == []  # the bad download was deleted


def test_download_network_error(tmp_path, monkeypatch):
    def fail(url, timeout=None):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    with pytest.raises(OSError, match="Could not download"):
        fetch_movielens("1m", data_home=tmp_path)
    assert os.listdir(tmp_path) == []


def test_missing_data_no_download(tmp_path):
    with pytest.raises(OSError, match="download_if_missing") as exc:
        fetch_movielens("20m", data_home=tmp_path, download_if_missing=False)
    assert "data_home" in str(exc.value)
    assert "ml-20m" in str(exc.value)


def test_missing_file_in_folder(tmp_path):
    write_folder(tmp_path, "100k", overrides={"u.item": None})
    with pytest.raises(OSError, match=r"u\.item"):
        fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)


@pytest.mark.parametrize(
    "variant, name, content, match",
    [
        ("100k", "u.data", b"1\t2\t3\t4\n1\t2\t3\t4\t5\n", r"u\.data.*fields"),
        (
            "100k",
            "u.data",
            b"1\t2\t3\t4\t5\n1\t2\t3\t4\t5\n",
            r"u\.data.*expected 4 fields",
        ),
        ("100k", "u.data", b"1\t2\t3\t4\nx\t2\t3\t4\n", r"u\.data.*row 2.*'user'.*'x'"),
        ("100k", "u.data", b"", r"u\.data.*empty"),
        ("100k", "u.data", b"1\t2\t3\t4\n1\t2\t3\n", r"u\.data.*'timestamp'.*missing"),
        (
            "latest-small",
            "movies.csv",
            b'movieId,title,genres\n1,"A, B (1990)"\n',
            r"movies\.csv.*line 2 has 2 fields",
        ),
        (
            "100k",
            "u.item",
            b"1|T (1990)||||" + b"|".join([b"2"] * 19) + b"\n",
            r"u\.item.*expected 0 or 1",
        ),
        (
            "100k",
            "u.user",
            b"1|24|M|technician\n",
            r"u\.user.*line 1 has 4 fields, expected 5",
        ),
        (
            "1m",
            "ratings.dat",
            b"1::2::3::4\n1::2::3.5.1::4\n",
            r"ratings\.dat.*'rating'",
        ),
        (
            "1m",
            "movies.dat",
            b"1::A (1990)::Drama\n2::B (1991)\n",
            r"movies\.dat.*line 2 has 2 fields",
        ),
        (
            "latest-small",
            "ratings.csv",
            b"userId,movieId,rating\n1,2,3\n",
            r"ratings\.csv.*header",
        ),
        (
            "20m",
            "ratings.csv",
            b"userId,movieId,rating,timestamp\n1,abc,3.0,5\n",
            r"ratings\.csv.*'item'.*'abc'",
        ),
        (
            "20m",
            "movies.csv",
            b"movieId,title,genres\n1,A,Drama\n1,B,Drama\n",
            r"movies\.csv.*more than once",
        ),
    ],
)
def test_corrupt_files(tmp_path, variant, name, content, match):
    write_folder(tmp_path, variant, overrides={name: content})
    with pytest.raises(ValueError, match=match):
        fetch_movielens(variant, data_home=tmp_path, download_if_missing=False)


@pytest.mark.parametrize("variant", ["10k", "ml-100k", None, 100])
def test_invalid_variant(tmp_path, variant):
    with pytest.raises(ValueError, match="valid variants are '100k', '1m', '20m'"):
        fetch_movielens(variant, data_home=tmp_path)


def test_checksums_are_pinned():
    for archive in _movielens.ARCHIVES.values():
        assert len(archive.checksum) == 64
        assert archive.url.startswith("https://files.grouplens.org/")


# ---------------------------------------------------------------------------
# Data home
# ---------------------------------------------------------------------------


def test_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_RECSYS_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == str(tmp_path / "from_env")
    assert (tmp_path / "from_env").is_dir()
    path = get_data_home(tmp_path / "explicit")
    assert isinstance(path, str) and Path(path).is_dir()
    monkeypatch.delenv("SKLEARN_RECSYS_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == str(tmp_path / "home" / "sklearn_recsys_data")
    (tmp_path / "home" / "sklearn_recsys_data" / "f.txt").write_text("x")
    clear_data_home()
    assert not (tmp_path / "home" / "sklearn_recsys_data").exists()
    with pytest.raises(TypeError, match="data_home"):
        get_data_home(3)


# ---------------------------------------------------------------------------
# make_interactions
# ---------------------------------------------------------------------------


def _affinity(data, df):
    users, items = df["user"].to_numpy(), df["item"].to_numpy()
    dot = np.einsum("ij,ij->i", data.user_factors[users], data.item_factors[items])
    return dot + np.log(data.item_popularity[items])


def test_make_interactions_shapes():
    data = make_interactions(n_users=40, n_items=30, n_components=3, random_state=0)
    df = data.interactions
    assert list(df.columns) == ["user", "item", "timestamp"]
    assert all(str(t) == "int64" for t in df.dtypes)
    assert data.user_factors.shape == (40, 3)
    assert data.item_factors.shape == (30, 3)
    assert data.item_popularity.shape == (30,)
    assert np.isclose(data.item_popularity.sum(), 1.0)
    assert df["user"].between(0, 39).all() and df["item"].between(0, 29).all()
    counts = df.groupby("user").size()
    assert len(counts) == 40 and counts.min() >= 2
    assert "successor" not in data and "item_features" not in data
    assert isinstance(data.DESCR, str)


def test_make_interactions_density():
    data = make_interactions(n_users=500, n_items=200, density=0.1, random_state=0)
    per_user = data.interactions.groupby("user").size()
    assert 15 < per_user.mean() < 25
    assert per_user.std() > 1  # varies across users
    full = make_interactions(n_users=5, n_items=10, density=1.0, random_state=0)
    assert full.interactions.groupby("user").size().max() <= 10


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_make_interactions_determinism_and_no_duplicates(sequential, feedback):
    kwargs = dict(
        n_users=60,
        n_items=40,
        feedback=feedback,
        sequential=sequential,
        item_features="vector",
    )
    a = make_interactions(**kwargs, random_state=1)
    b = make_interactions(**kwargs, random_state=np.random.RandomState(1))
    c = make_interactions(**kwargs, random_state=2)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    np.testing.assert_array_equal(a.item_features, b.item_features)
    assert not a.interactions.equals(c.interactions)
    assert not a.interactions.duplicated(["user", "item"]).any()


def test_make_interactions_shuffle():
    kwargs = dict(n_users=30, n_items=20, random_state=0)
    ordered = make_interactions(**kwargs, shuffle=False).interactions
    assert ordered["user"].is_monotonic_increasing
    assert (
        ordered.groupby("user")["timestamp"]
        .apply(lambda t: t.is_monotonic_increasing)
        .all()
    )
    shuffled = make_interactions(**kwargs, shuffle=True).interactions
    assert not shuffled["user"].is_monotonic_increasing


def test_make_interactions_markov_structure():
    data = make_interactions(
        n_users=300, n_items=200, sequential=True, markov_strength=0.9, random_state=0
    )
    succ = data.successor
    assert succ.shape == (200,)
    assert np.array_equal(np.sort(succ), np.arange(200))  # a permutation
    assert not np.any(succ == np.arange(200))
    df = data.interactions.sort_values(["user", "timestamp"])
    users, items = df["user"].to_numpy(), df["item"].to_numpy()
    same = users[1:] == users[:-1]
    assert (np.diff(df["timestamp"].to_numpy())[same] > 0).all()
    follows = succ[items[:-1]] == items[1:]
    assert follows[same].mean() > 0.6
    # without the chain, successors are rare
    flat = make_interactions(
        n_users=300, n_items=200, sequential=True, markov_strength=0.0, random_state=0
    )
    df = flat.interactions.sort_values(["user", "timestamp"])
    users, items = df["user"].to_numpy(), df["item"].to_numpy()
    same = users[1:] == users[:-1]
    assert (flat.successor[items[:-1]] == items[1:])[same].mean() < 0.1


def test_make_interactions_popularity_skew():
    def top_share(exponent):
        data = make_interactions(
            n_users=500, n_items=200, popularity_exponent=exponent, random_state=0
        )
        counts = np.sort(np.bincount(data.interactions["item"], minlength=200))[::-1]
        return counts[:20].sum() / counts.sum()

    assert top_share(1.0) > 0.25
    assert top_share(2.0) > top_share(1.0) > top_share(0.0)


def test_make_interactions_preferences_recoverable():
    data = make_interactions(
        n_users=300, n_items=100, popularity_exponent=0.0, random_state=0
    )
    df = data.interactions
    observed = np.einsum(
        "ij,ij->i", data.user_factors[df["user"]], data.item_factors[df["item"]]
    )
    all_aff = data.user_factors @ data.item_factors.T
    assert observed.mean() > all_aff.mean() + 1.0


def test_make_interactions_explicit_ratings():
    data = make_interactions(
        n_users=300,
        n_items=100,
        feedback="explicit",
        rating_scale=(1, 5),
        random_state=0,
    )
    df = data.interactions
    assert list(df.columns) == ["user", "item", "timestamp", "rating"]
    assert df["rating"].dtype == np.int64
    assert df["rating"].between(1, 5).all()
    assert df["rating"].nunique() == 5
    assert np.corrcoef(_affinity(data, df), df["rating"])[0, 1] > 0.6
    other = make_interactions(
        n_users=50,
        n_items=20,
        feedback="explicit",
        rating_scale=(0, 10),
        random_state=0,
    )
    assert other.interactions["rating"].between(0, 10).all()


@pytest.mark.parametrize("n_components", [5, 12])
def test_make_interactions_images_encode_factors(n_components):
    data = make_interactions(
        n_users=10,
        n_items=400,
        n_components=n_components,
        item_features="image",
        image_shape=(8, 8),
        random_state=0,
    )
    images = data.item_images
    assert images.shape == (400, 8, 8) and images.dtype == np.uint8
    X = images.reshape(400, -1).astype(float)
    model = Ridge(alpha=1.0).fit(X[:300], data.item_factors[:300])
    assert model.score(X[300:], data.item_factors[300:]) > 0.5
    assert "item_features" not in data


def test_make_interactions_vector_features():
    data = make_interactions(
        n_users=10, n_items=400, item_features="vector", n_features=16, random_state=0
    )
    X = data.item_features
    assert X.shape == (400, 16)
    model = Ridge(alpha=1.0).fit(X[:300], data.item_factors[:300])
    assert model.score(X[300:], data.item_factors[300:]) > 0.5
    assert "item_images" not in data


def test_make_interactions_at_scale():
    # speed is measured in benchmarks, not asserted here; this checks that
    # a 1000 x 1000 catalogue works in both modes and stays duplicate-free
    for sequential in (False, True):
        df = make_interactions(
            n_users=1000, n_items=1000, sequential=sequential, random_state=0
        ).interactions
        assert df["user"].nunique() == 1000
        assert not df.duplicated(["user", "item"]).any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_users=0), "n_users"),
        (dict(n_items=1), "n_items"),
        (dict(n_users=2.5), "n_users"),
        (dict(n_components=0), "n_components"),
        (dict(density=0.0), "density"),
        (dict(density=1.5), "density"),
        (dict(feedback="clicks"), "feedback"),
        (dict(popularity_exponent=-1), "popularity_exponent"),
        (dict(noise=-0.1), "noise"),
        (dict(sequential="yes"), "sequential"),
        (dict(markov_strength=1.2), "markov_strength"),
        (dict(item_features="text"), "item_features"),
        (
            dict(item_features="image", image_shape=(2, 2), n_components=5),
            "image_shape",
        ),
        (dict(image_shape=(8,)), "image_shape"),
        (dict(n_features=0), "n_features"),
        (dict(rating_scale=(5, 1)), "rating_scale"),
        (dict(rating_scale=(1.5, 5)), "rating_scale"),
        (dict(shuffle=None), "shuffle"),
    ],
)
def test_make_interactions_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_interactions(**kwargs)
