"""LEO's pre-computed embeddings: the generated stand-in in the release's exact pickle format, read back through the
same reader; every way to hand over the release (folders, the zip, a download) giving one identical cache; each bad
input one clear error that names the file and leaves nothing behind; loading before fetching."""
import hashlib
import json
import pickle
import pickletools
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from suite.cli import main
from suite.data import DataError, split_file
from suite.data import leo_embeddings as le
from suite.data.leo_embeddings import CLASSES, DATASETS, DIM, SPLITS, fetch_leo_embeddings, load_leo_embeddings

RAVI = json.loads(split_file("miniimagenet", "ravi").read_text())["classes"]
PER_CLASS = 3  # the small real-format copies the tests build


def quiet(root, source=None, url=None, sha256=None, **kw):
    logs = []
    fetch_leo_embeddings(root, source, url, sha256, progress=False, log=logs.append, **kw)
    return logs


def leftovers(root: Path) -> list:
    return sorted(root.rglob("*")) if root.exists() else []


def arrays(root: Path) -> dict:
    cache = le.cache_dir(root)
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*.npy"))}


def read(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")  # our own test files


def rewrite(path: Path, **changes):
    """Rewrite one pickle of a copy in the release's format, with some fields changed (a function of the old)."""
    data = read(path)
    for field, change in changes.items():
        data[field] = change(data)
    le.write_pickle(path, data["embeddings"], data["labels"], data["keys"])


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A small copy of the release: <tmp>/embeddings/<dataset>/center/<split>_embeddings.pkl, 3 images per class."""
    return le.write_standin(tmp_path_factory.mktemp("release"), per_class=PER_CLASS, seed=1)


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    quiet(root, tree)
    return root


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    quiet(root, generated=True)
    return root


def test_the_stand_in_is_written_as_python_2_wrote_the_release(tmp_path):
    top = le.write_standin(tmp_path, per_class=2)
    assert top == tmp_path / "embeddings"
    assert sorted(str(p.relative_to(top)) for p in top.rglob("*.pkl")) == sorted(
        f"{ds}/center/{s}_embeddings.pkl" for ds in DATASETS for s in SPLITS)
    raw = (top / "miniImageNet" / "center" / "val_embeddings.pkl").read_bytes()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert ops[0] == ("PROTO", 2)
    assert {name for name, _ in ops} & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"} == set()
    assert {arg for name, arg in ops if name == "GLOBAL"} == {"numpy.core.multiarray _reconstruct", "numpy ndarray",
                                                             "numpy dtype"}
    data = pickle.loads(raw, encoding="latin1")
    assert sorted(data) == ["embeddings", "keys", "labels"]
    assert data["embeddings"].dtype == np.float32 and data["embeddings"].shape == (16 * 2, DIM)
    assert (data["embeddings"] >= 0).all() and data["labels"].shape == (32,) and data["keys"].shape == (32,)
    for key in data["keys"]:
        _, wnid, image = key.split("-")
        assert wnid in RAVI["val"] and image.split("_")[0] == wnid
    assert sorted({k.split("-")[1] for k in data["keys"]}) == sorted(RAVI["val"])


def test_the_generated_stand_in_round_trips_through_the_reader(generated):
    for ds in DATASETS:
        seen = set()
        for split in SPLITS:
            embeddings, offsets, meta = load_leo_embeddings(generated, ds, split)
            n = CLASSES[ds][split]
            assert isinstance(embeddings, np.memmap) and embeddings.dtype == np.float32
            assert embeddings.shape == (n * le.GENERATED_PER_CLASS, DIM)
            assert offsets.dtype == np.int64 and offsets.tolist() == list(range(0, (n + 1) * 20, 20))
            assert meta["generated"] is True and meta["format"] == "generated" and meta["source"] is None
            assert len(meta["classes"]) == n and meta["classes"] == sorted(meta["classes"])
            assert meta["counts"] == [20] * n and set(meta["sha256"]) == set(SPLITS)
            assert not seen & set(meta["classes"])
            seen |= set(meta["classes"])
            if ds == "miniImageNet":
                assert meta["classes"] == sorted(RAVI[split])
            assert (embeddings >= 0).all() and np.isfinite(embeddings).all()
    meta = json.loads((le.cache_dir(generated) / le.META_NAME).read_text())
    assert meta["datasets"]["miniImageNet"]["ravi_split"] is True
    for entry in (meta["datasets"][ds]["splits"][s] for ds in DATASETS for s in SPLITS):
        path = le.cache_dir(generated) / entry["file"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["bytes"] == path.stat().st_size and len(entry["pickle_sha256"]) == 64


def test_the_generated_classes_can_be_told_apart_but_not_trivially(generated):
    """Nearest prototype on unit-norm embeddings (as LEO normalises them): far above chance, below perfect."""
    rng = np.random.default_rng(0)
    for ds in DATASETS:
        embeddings, offsets, _ = load_leo_embeddings(generated, ds, "test")
        x = np.asarray(embeddings) / np.linalg.norm(embeddings, axis=1, keepdims=True)
        accuracy = {}
        for shots in (1, 5):
            hits = []
            for _ in range(200):
                rows = [offsets[c] + rng.permutation(20)[:shots + 15]
                        for c in rng.choice(len(offsets) - 1, 5, replace=False)]
                prototypes = np.stack([x[r[:shots]].mean(0) for r in rows])
                queries = np.stack([x[r[shots:]] for r in rows])
                hits.append(((queries @ prototypes.T).argmax(-1) == np.arange(5)[:, None]).mean())
            accuracy[shots] = np.mean(hits)
        assert 0.3 < accuracy[1] < accuracy[5] < 0.97, (ds, accuracy)


def test_the_generated_stand_in_is_the_same_everywhere(generated, tmp_path):
    quiet(tmp_path, generated=True)
    assert arrays(tmp_path) == arrays(generated)


def test_a_copy_is_grouped_class_after_class_in_key_order(tree, reference):
    meta = json.loads((le.cache_dir(reference) / le.META_NAME).read_text())
    assert meta["generated"] is False and meta["format"] == "leo-pickles" and meta["source"] == str(tree)
    for ds in DATASETS:
        for split in SPLITS:
            data = read(tree / ds / "center" / f"{split}_embeddings.pkl")
            classes = [k.split("-")[1] for k in data["keys"]]
            assert classes != sorted(classes)  # the rows are shuffled: the grouping is the reader's
            expected = np.concatenate([data["embeddings"][[i for i, c in enumerate(classes) if c == wnid]]
                                       for wnid in sorted(set(classes))])
            embeddings, offsets, view = load_leo_embeddings(reference, ds, split)
            np.testing.assert_array_equal(embeddings, expected)
            assert view["classes"] == sorted(set(classes)) and offsets[-1] == len(classes)
            assert np.diff(offsets).tolist() == [PER_CLASS] * CLASSES[ds][split]
            entry = meta["datasets"][ds]["splits"][split]
            assert entry["pickle_sha256"] == hashlib.sha256(
                (tree / ds / "center" / f"{split}_embeddings.pkl").read_bytes()).hexdigest()


def zip_of(folder: Path, dest: Path, prefix: str = "embeddings", extra: dict | None = None) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{prefix}/{path.relative_to(folder)}" if prefix else str(path.relative_to(folder)))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


def test_every_way_to_hand_over_the_release_gives_the_same_cache(tree, reference, tmp_path):
    parent = tmp_path / "parent"
    shutil.copytree(tree, parent / "embeddings")
    (parent / "embeddings" / "miniImageNet" / "multiview").mkdir()
    shutil.copy(tree / "miniImageNet" / "center" / "val_embeddings.pkl",
                parent / "embeddings" / "miniImageNet" / "multiview" / "val_embeddings.pkl")
    archive = zip_of(tree, tmp_path / "embeddings.zip",
                     extra={"embeddings/miniImageNet/multiview/train_embeddings.pkl": b"never read",
                            "__MACOSX/embeddings/._x": b""})
    bare = zip_of(tree, tmp_path / "bare.zip", prefix="")
    for i, source in enumerate([parent, parent / "embeddings", archive, bare]):
        root = tmp_path / f"data{i}"
        logs = quiet(root, source)
        assert arrays(root) == arrays(reference), source
        assert [p.name for p in root.iterdir()] == ["leo_embeddings"]  # nothing else left
        meta = json.loads((le.cache_dir(root) / le.META_NAME).read_text())
        assert meta["source"] == str(source)
        if source == parent:
            assert any("multiview: skipped" in line for line in logs), logs
        if source == archive:
            assert any("1 multiview file(s) skipped" in line for line in logs), logs
            assert meta["source_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_a_download_records_its_sha256_or_checks_it(tree, reference, tmp_path):
    archive = zip_of(tree, tmp_path / "embeddings.zip")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    logs = quiet(tmp_path / "data", url=archive.as_uri())
    assert arrays(tmp_path / "data") == arrays(reference)
    meta = json.loads((le.cache_dir(tmp_path / "data") / le.META_NAME).read_text())
    assert (meta["source"], meta["source_sha256"], meta["source_sha256_checked"]) == (archive.as_uri(), digest, False)
    assert any(f"sha256 {digest} (not checked" in line and f"--sha256 {digest}" in line for line in logs), logs

    quiet(tmp_path / "pinned", url=archive.as_uri(), sha256=digest.upper())
    meta = json.loads((le.cache_dir(tmp_path / "pinned") / le.META_NAME).read_text())
    assert (meta["source_sha256"], meta["source_sha256_checked"]) == (digest, True)
    assert arrays(tmp_path / "pinned") == arrays(reference)

    with pytest.raises(DataError, match=f"sha256 {digest} .*expected {'0' * 64}"):
        quiet(tmp_path / "bad", url=archive.as_uri(), sha256="0" * 64)
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body>Quota exceeded</body></html>")
    with pytest.raises(DataError, match=f"^could not download .*{re.escape(page.as_uri())}: looks like an HTML page"):
        quiet(tmp_path / "bad", url=page.as_uri())
    with pytest.raises(DataError, match="could not download"):
        quiet(tmp_path / "bad", url=(tmp_path / "absent.zip").as_uri())
    with pytest.raises(DataError, match="64 hex digits"):
        quiet(tmp_path / "bad", sha256="abc")
    with pytest.raises(DataError, match="--sha256 checks a download"):
        quiet(tmp_path / "bad", tree, sha256=digest)
    with pytest.raises(DataError, match="give only one of --from and --generated"):
        quiet(tmp_path / "bad", tree, generated=True)
    assert leftovers(tmp_path / "bad") == []


def test_the_formats_python_gives_such_data_are_accepted(tree, reference, tmp_path):
    """Keys as a list, a unicode or a byte-string array; float64 embeddings; a Python 3 pickle."""
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    center = copy / "miniImageNet" / "center"
    rewrite(center / "train_embeddings.pkl", keys=lambda d: list(d["keys"]))
    rewrite(center / "val_embeddings.pkl", keys=lambda d: np.array(d["keys"], dtype=str))
    rewrite(center / "test_embeddings.pkl", keys=lambda d: np.array(d["keys"], dtype=bytes),
            embeddings=lambda d: d["embeddings"].astype(np.float64))
    data = read(copy / "tieredImageNet" / "center" / "val_embeddings.pkl")
    (copy / "tieredImageNet" / "center" / "val_embeddings.pkl").write_bytes(pickle.dumps(data, protocol=5))
    quiet(tmp_path / "data", copy)
    assert arrays(tmp_path / "data") == arrays(reference)


def html_instead(path: Path):
    path.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>")


def swap_a_class(path: Path, other: Path):
    """Relabel one class of `path` as a class of `other` (the class count stays right)."""
    theirs = read(other)["keys"][0].split("-")[1]

    def keys(d):
        mine = d["keys"][0].split("-")[1]
        return np.array([k.replace(mine, theirs) for k in d["keys"]], dtype=object)
    rewrite(path, keys=keys)


MINI, TIERED = "miniImageNet/center", "tieredImageNet/center"
BAD = {  # what is done to a copy, the file the error names, and what it says
    "html": (lambda s: html_instead(s / MINI / "train_embeddings.pkl"), f"{MINI}/train_embeddings.pkl",
             "looks like an HTML page, not a pickle"),
    "not a pickle": (lambda s: (s / MINI / "val_embeddings.pkl").write_bytes(b"PK\x03\x04 a zip, say" * 40),
                     f"{MINI}/val_embeddings.pkl", "not a valid pickle of arrays, truncated or damaged"),
    "truncated": (lambda s: (s / TIERED / "test_embeddings.pkl").write_bytes(
        (s / TIERED / "test_embeddings.pkl").read_bytes()[:-5000]), f"{TIERED}/test_embeddings.pkl",
        r"not a valid pickle of arrays, truncated or damaged \((UnpicklingError|EOFError|ValueError)"),
    "code in the pickle": (lambda s: (s / MINI / "test_embeddings.pkl").write_bytes(
        b"cposix\nsystem\n(S'echo hi'\ntR."), f"{MINI}/test_embeddings.pkl", "refusing to load posix.system"),
    "not a dict": (lambda s: (s / MINI / "val_embeddings.pkl").write_bytes(pickle.dumps([1, 2], protocol=2)),
                   f"{MINI}/val_embeddings.pkl", "expected a dict with 'embeddings', 'labels' and 'keys', got list"),
    "a key missing": (lambda s: (s / MINI / "val_embeddings.pkl").write_bytes(pickle.dumps(
        {k: v for k, v in read(s / MINI / "val_embeddings.pkl").items() if k != "labels"}, protocol=2)),
        f"{MINI}/val_embeddings.pkl", "the dict has no 'labels'"),
    "639 columns": (lambda s: rewrite(s / TIERED / "train_embeddings.pkl",
                                      embeddings=lambda d: d["embeddings"][:, 1:]),
                    f"{TIERED}/train_embeddings.pkl",
                    r"embeddings is float32 \[1053, 639\], expected float \[n, 640\]"),
    "1-d": (lambda s: rewrite(s / MINI / "train_embeddings.pkl", embeddings=lambda d: d["embeddings"][:, 0]),
            f"{MINI}/train_embeddings.pkl", r"embeddings is float32 \[192\], expected float \[n, 640\]"),
    "integers": (lambda s: rewrite(s / MINI / "train_embeddings.pkl",
                                   embeddings=lambda d: (d["embeddings"] * 100).astype(np.int32)),
                 f"{MINI}/train_embeddings.pkl", r"embeddings is int32 \[192, 640\], expected float"),
    "labels short": (lambda s: rewrite(s / MINI / "test_embeddings.pkl", labels=lambda d: d["labels"][:-1]),
                     f"{MINI}/test_embeddings.pkl", r"labels has shape \[59\], expected \[60\] like the 60 embeddings"),
    "keys long": (lambda s: rewrite(s / MINI / "test_embeddings.pkl",
                                    keys=lambda d: np.concatenate([d["keys"], d["keys"][:1]])),
                  f"{MINI}/test_embeddings.pkl", r"keys has shape \[61\], expected \[60\]"),
    "bad key": (lambda s: rewrite(s / MINI / "val_embeddings.pkl",
                                  keys=lambda d: np.array(["n01-broken"] + list(d["keys"][1:]), dtype=object)),
                f"{MINI}/val_embeddings.pkl", r"keys\[0\] = 'n01-broken' is not <id>-<class>-<image file>"),
    "class prefix": (lambda s: rewrite(s / MINI / "val_embeddings.pkl", keys=lambda d: np.array(
        ["-".join(d["keys"][0].split("-")[:2]) + "-n00000000_1.JPEG"] + list(d["keys"][1:]), dtype=object)),
        f"{MINI}/val_embeddings.pkl",
        r"keys\[0\] = '.*': its image file 'n00000000_1.JPEG' does not start with its class n\d{8}_"),
    "duplicate": (lambda s: rewrite(s / TIERED / "val_embeddings.pkl", keys=lambda d: np.array(
        list(d["keys"][:-1]) + ["x-" + d["keys"][0].split("-", 1)[1]], dtype=object)), f"{TIERED}/val_embeddings.pkl",
        r"keys\[290\] = 'x-n9\d{7}-n9\d{7}_\d{8}\.JPEG' repeats the image file n9\d{7}_\d{8}\.JPEG of keys\[0\]"),
    "NaN": (lambda s: rewrite(s / MINI / "train_embeddings.pkl",
                              embeddings=lambda d: np.where(np.arange(DIM) == 7, np.nan, d["embeddings"])
                              .astype(np.float32)),
            f"{MINI}/train_embeddings.pkl", "the embeddings hold NaN or infinite values"),
    "val under the train name": (lambda s: shutil.copy(s / MINI / "val_embeddings.pkl",
                                                       s / MINI / "train_embeddings.pkl"),
                                 f"{MINI}/train_embeddings.pkl",
                                 r"16 classes, expected 64 for miniImageNet's train split \(16 is its val split's: the "
                                 r"val pickle under the train name\?\)"),
    "tiered test as val": (lambda s: shutil.copy(s / TIERED / "test_embeddings.pkl",
                                                 s / TIERED / "val_embeddings.pkl"),
                           f"{TIERED}/val_embeddings.pkl", "160 classes, expected 97 for tieredImageNet's val split"),
    "a class of another split": (lambda s: swap_a_class(s / MINI / "test_embeddings.pkl",
                                                        s / MINI / "train_embeddings.pkl"),
                                 f"{MINI}/test_embeddings.pkl",
                                 r"1 of its classes are also in .*miniImageNet/center/train_embeddings\.pkl "
                                 r"\(n\d{8}\)"),
    "a dataset missing": (lambda s: shutil.rmtree(s / "tieredImageNet"), "tieredImageNet",
                          "no such folder: the tieredImageNet embeddings are missing"),
    "center missing": (lambda s: (s / MINI).rename(s / "miniImageNet" / "multiview"), MINI,
                       "no such folder: the miniImageNet center-crop embeddings are missing"),
    "a split missing": (lambda s: (s / TIERED / "test_embeddings.pkl").unlink(), f"{TIERED}/test_embeddings.pkl",
                        "no such file: the tieredImageNet test embeddings are missing"),
}


ZIP_MESSAGES = {  # where a zip names itself
    "a dataset missing": "no tieredImageNet/center/ in it: the tieredImageNet embeddings are missing",
    "center missing": "no miniImageNet/center/ in it",
    "a split missing": "no tieredImageNet/center/test_embeddings.pkl in it",
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_copy_is_one_clear_error_naming_the_file_and_leaves_nothing(case, tree, tmp_path):
    damage, named, message = BAD[case]
    src = tmp_path / "embeddings"
    shutil.copytree(tree, src)
    damage(src)
    for i, source in enumerate([src, zip_of(src, tmp_path / "embeddings.zip")]):
        root = tmp_path / f"data{i}"
        in_zip = ZIP_MESSAGES.get(case) if source != src else None
        with pytest.raises(DataError, match=in_zip or message) as e:
            quiet(root, source)
        where = src / named if source == src else source if in_zip else f"{source}/embeddings/{named}"
        assert str(e.value).startswith(str(where)) and "\n" not in str(e.value), str(e.value)
        assert leftovers(root) == []


@pytest.mark.parametrize("make", ["html", "truncated zip", "not a zip", "no such path", "no dataset folder"])
def test_a_bad_source_is_one_clear_error(make, tree, tmp_path):
    path = zip_of(tree, tmp_path / "embeddings.zip")
    if make == "html":
        html_instead(path)
    elif make == "truncated zip":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif make == "not a zip":
        path.write_bytes(b"\x80\x02 a pickle, say")
    elif make == "no such path":
        path = tmp_path / "absent"
    else:
        path = tmp_path / "empty"
        (path / "a").mkdir(parents=True)
        (path / "b").mkdir()
    message = {"html": "looks like an HTML page, not a zip archive", "not a zip": "not a zip archive",
               "truncated zip": "not a valid (zip archive|pickle of arrays), truncated or damaged",
               "no such path": "no such file or folder", "no dataset folder": "no miniImageNet/ or tieredImageNet/ "
                                                                              "folder in it"}[make]
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}.*: {message}"):
        quiet(tmp_path / "data", path)
    assert leftovers(tmp_path / "data") == []


def test_a_failed_fetch_keeps_the_cache_there_was(tree, generated, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(generated, root)
    before = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    src = tmp_path / "embeddings"
    shutil.copytree(tree, src)
    html_instead(src / TIERED / "test_embeddings.pkl")
    with pytest.raises(DataError, match="looks like an HTML page"):
        quiet(root, src)
    assert {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert load_leo_embeddings(root, "miniImageNet", "train")[2]["generated"] is True


def test_the_stand_in_and_real_data_replace_each_other_only_one_way(tree, reference, tmp_path):
    root = tmp_path / "data"
    quiet(root, generated=True)
    assert any("already fetched" in line for line in quiet(root, generated=True))
    quiet(root, tree)  # real data replaces the stand-in
    assert arrays(root) == arrays(reference)
    assert load_leo_embeddings(root, "tieredImageNet", "test")[2]["generated"] is False
    assert any("already fetched" in line for line in quiet(root, tree))
    with pytest.raises(DataError, match="holds LEO's real embeddings; delete that folder"):
        quiet(root, generated=True)


def test_loading_before_fetching_or_from_a_damaged_cache_is_a_clear_error(reference, tmp_path):
    with pytest.raises(DataError, match=r"not fetched: run `suite fetch leo_embeddings`.*"
                                        r"`suite fetch leo_embeddings --from PATH`.*"
                                        r"`suite fetch leo_embeddings --generated`.*"
                                        r"there is no .*leo_embeddings\.json"):
        load_leo_embeddings(tmp_path, "miniImageNet", "train")
    with pytest.raises(DataError, match="datasets miniImageNet, tieredImageNet and splits train, val, test, not "
                                        "'mini' / 'train'"):
        load_leo_embeddings(reference, "mini", "train")
    root = tmp_path / "copy"
    shutil.copytree(reference, root)
    array = le.cache_dir(root) / "tieredImageNet" / "val.npy"
    array.write_bytes(array.read_bytes()[:-640])
    with pytest.raises(DataError, match=rf"^{array}: [\d,]+ bytes, leo_embeddings\.json says [\d,]+; run `suite "
                                        "fetch leo_embeddings` again"):
        load_leo_embeddings(root, "miniImageNet", "train")
    (le.cache_dir(root) / le.META_NAME).write_text("{")
    with pytest.raises(DataError, match="damaged LEO embeddings cache"):
        load_leo_embeddings(root, "miniImageNet", "train")


def fetch_cli(data, *args, env=None):
    return CliRunner().invoke(main, ["--data", str(data), "fetch", "leo_embeddings", "--no-progress", *args], env=env)


def test_the_cli(tree, reference, tmp_path):
    result = fetch_cli(tmp_path / "generated", env={"SUITE_FETCH_GENERATED": "miniimagenet,leo_embeddings",
                                                    "SUITE_FETCH_FROM": None})
    assert result.exit_code == 0, result.output
    assert load_leo_embeddings(tmp_path / "generated", "miniImageNet", "val")[2]["generated"] is True
    mirror = tmp_path / "mirror"  # SUITE_FETCH_FROM=DIR takes DIR/leo_embeddings
    shutil.copytree(tree, mirror / "leo_embeddings" / "embeddings")
    result = fetch_cli(tmp_path / "env", env={"SUITE_FETCH_FROM": str(mirror), "SUITE_FETCH_GENERATED": None})
    assert result.exit_code == 0, result.output
    assert arrays(tmp_path / "env") == arrays(reference)
    archive = zip_of(tree, tmp_path / "embeddings.zip")
    result = fetch_cli(tmp_path / "url", "--url", archive.as_uri())
    assert result.exit_code == 0 and "not checked" in result.output, result.output
    assert arrays(tmp_path / "url") == arrays(reference)
    result = fetch_cli(tmp_path / "bad", "--generated", "--from", str(tree))
    assert result.exit_code == 1 and result.output.endswith("Error: give only one of --from and --generated\n")
    result = CliRunner().invoke(main, ["--data", str(tmp_path / "bad"), "fetch", "omniglot", "--generated"])
    assert result.exit_code == 1 and "are for miniimagenet, not omniglot (leo_embeddings takes them too)" in \
        result.output, result.output
    assert leftovers(tmp_path / "bad") == []
