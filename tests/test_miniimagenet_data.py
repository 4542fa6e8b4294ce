"""Mini-ImageNet: the pinned Ravi split, every format users have converted into one identical cache, each bad input
one clear error that leaves nothing behind, the generated stand-in, the task family and the CLI."""
import copy
import hashlib
import io
import json
import pickle
import shutil
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

import fake_miniimagenet as fake
from suite.cli import main
from suite.data import DataError
from suite.data import miniimagenet as mi
from suite.data.miniimagenet import fetch_miniimagenet, load_miniimagenet
from suite.protocol.manifest import load_manifest
from suite.protocol.schema import ManifestError
from suite.tasks import miniimagenet as family

REPO = Path(__file__).resolve().parents[1]
SHARED_RAVI = REPO.parent / "shared" / "data" / "miniimagenet" / "splits" / "ravi"
RAVI_MD5 = {"train": "9525e1538f67719f18f1936bf8d0782d", "val": "ce315ce99b41fbf84fa6acd69315d918",
            "test": "5b89df877c6cbe5d291e43118a2a9591"}  # shared/data/README.md


def quiet(root, source=None, **kw):
    return fetch_miniimagenet(root, source, progress=False, log=lambda msg: None, **kw)


def leftovers(root: Path) -> list:
    return sorted(root.rglob("*")) if root.exists() else []


def cache_files(root: Path) -> dict:
    cache = mi.cache_dir(root)
    return {p.name: p.read_bytes() for p in sorted(cache.iterdir())}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny split, its images, and a copy in every format."""
    where = tmp_path_factory.mktemp("tiny")
    split = fake.tiny_split(where / "tiny.json")
    jpegs = fake.images(split)
    sources = {fmt: fake.write(fmt, where / fmt, split, jpegs) for fmt in fake.FORMATS}
    return SimpleNamespace(split_file=where / "tiny.json", split=split, jpegs=jpegs, sources=sources,
                           expected=fake.expected_cache(split, jpegs))


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """The cache made from the pickles."""
    root = tmp_path_factory.mktemp("reference")
    quiet(root, tiny.sources["pickle"], split_file=tiny.split_file)
    return root


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    result = CliRunner().invoke(main, ["--data", str(root), "fetch", "miniimagenet", "--generated", "--no-progress"])
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.skipif(not (SHARED_RAVI / "train.csv").is_file(), reason=f"Ravi's CSVs are not in {SHARED_RAVI}")
def test_the_pinned_split_is_ravis_csvs_written_by_the_documented_procedure():
    text = mi.SPLIT_FILE.read_text()
    pinned = json.loads(text)
    assert mi.split_file_text(mi.split_from_csvs(SHARED_RAVI, "ravi", pinned["source"])) == text
    assert pinned["csv_md5"] == RAVI_MD5 and pinned["images_per_class"] == 600
    assert {s: len(c) for s, c in pinned["classes"].items()} == {"train": 64, "val": 16, "test": 20}
    everything = [w for c in pinned["classes"].values() for w in c]
    assert len(set(everything)) == 100 and set(pinned["rows"]) == set(everything)
    assert all(len(set(r)) == 600 and r == sorted(r) and 1 <= r[0] and r[-1] <= 1300 for r in pinned["rows"].values())
    # the first row of train.csv is n0153282900000005.jpg: derivable from the file
    assert pinned["classes"]["train"][0] == "n01532829" and pinned["rows"]["n01532829"][:3] == [5, 6, 7]
    assert "twitter/meta-learning-lstm" in pinned["source"]


def test_the_split_ships_with_the_package_and_its_license():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"splits/miniimagenet/*"' in pyproject and 'hdf5 = ["h5py"]' in pyproject
    assert (mi.SPLIT_FILE.parent / "LICENSE.ravi").read_text().startswith("MIT License\n\nCopyright (c) 2016 Twitter")


@pytest.mark.parametrize("fmt", fake.FORMATS)
def test_every_format_gives_the_same_cache(fmt, tiny, reference, tmp_path):
    root = tmp_path / "data"
    quiet(root, tiny.sources[fmt], split_file=tiny.split_file)
    assert [p.name for p in leftovers(root)] == ["miniimagenet", "miniimagenet.json", "test.npy", "train.npy",
                                                 "val.npy"]
    ours, theirs = cache_files(root), cache_files(reference)
    for split in mi.SPLITS:
        assert ours[f"{split}.npy"] == theirs[f"{split}.npy"], split
        images, classes, meta = load_miniimagenet(root, split, tiny.split_file)
        np.testing.assert_array_equal(images, tiny.expected[split])  # classes in order, images in row order
        assert isinstance(images, np.memmap) and list(classes) == tiny.split["classes"][split]
        assert list(classes.values())[1] == range(4, 8)
        assert meta["arrays"][split]["sha256"] == hashlib.sha256(ours[f"{split}.npy"]).hexdigest()
    meta, other = json.loads(ours["miniimagenet.json"]), json.loads(theirs["miniimagenet.json"])
    assert meta["format"] == fmt and meta["generated"] is False and meta["source"] == str(tiny.sources[fmt])
    assert {k: v for k, v in meta.items() if k not in ("format", "source")} == \
           {k: v for k, v in other.items() if k not in ("format", "source")}


def test_torchmetas_val_pickle_name_and_archives_of_any_format_are_accepted(tiny, reference, tmp_path):
    l2l = tiny.sources["pickle"]
    torchmeta = tmp_path / "mini-imagenet"
    shutil.copytree(l2l, torchmeta)
    (torchmeta / "mini-imagenet-cache-validation.pkl").rename(torchmeta / "mini-imagenet-cache-val.pkl")
    with tarfile.open(tmp_path / "mini-imagenet.tar.gz", "w:gz") as tf:
        tf.add(torchmeta, arcname="mini-imagenet")  # wrapped in a folder, as archives often are
    shutil.make_archive(str(tmp_path / "maml"), "zip", tiny.sources["folders"])
    for i, source in enumerate([torchmeta, tmp_path / "mini-imagenet.tar.gz", tmp_path / "maml.zip"]):
        root = tmp_path / f"data{i}"
        quiet(root, source, split_file=tiny.split_file)
        assert {k: v for k, v in cache_files(root).items() if k.endswith(".npy")} == \
               {k: v for k, v in cache_files(reference).items() if k.endswith(".npy")}
        assert [p.name for p in root.iterdir()] == ["miniimagenet"]  # the unpacked archive is gone


def test_a_url_is_downloaded_with_its_sha256_checked(tiny, reference, tmp_path):
    archive = tmp_path / "mini.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(tiny.sources["hdf5"], arcname=".")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=f"sha256 {digest} .*expected {'0' * 64}"):
        quiet(tmp_path / "bad", url=archive.as_uri(), sha256="0" * 64, split_file=tiny.split_file)
    assert leftovers(tmp_path / "bad") == []
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body>Google Drive - Quota exceeded</body></html>")
    with pytest.raises(DataError, match="looks like an HTML page"):
        quiet(tmp_path / "bad", url=page.as_uri(), sha256="0" * 64, split_file=tiny.split_file)
    with pytest.raises(DataError, match="needs --sha256"):
        quiet(tmp_path / "bad", url=archive.as_uri(), split_file=tiny.split_file)
    assert leftovers(tmp_path / "bad") == []
    root = tmp_path / "data"
    quiet(root, url=archive.as_uri(), sha256=digest.upper(), split_file=tiny.split_file)
    assert cache_files(root)["train.npy"] == cache_files(reference)["train.npy"]
    meta = json.loads(cache_files(root)["miniimagenet.json"])
    assert meta["format"] == "hdf5" and meta["source"] == archive.as_uri()
    assert [p.name for p in root.iterdir()] == ["miniimagenet"]


def test_image_folders_at_another_size_are_resized_with_lanczos(tiny, tmp_path):
    big = fake.images(tiny.split, size=(100, 130))
    source = fake.write("folders", tmp_path / "src", tiny.split, big)
    gray = source / "val" / tiny.split["classes"]["val"][0]
    first = sorted(gray.iterdir())[0]
    Image.open(io.BytesIO(big[gray.name][0])).convert("L").save(first, format="JPEG")  # a grey JPEG among them
    quiet(tmp_path / "data", source, split_file=tiny.split_file)
    for split in mi.SPLITS:
        images, classes, _ = load_miniimagenet(tmp_path / "data", split, tiny.split_file)
        for wnid, rows in classes.items():
            for k, row in enumerate(rows):
                path = source / split / wnid / f"{wnid}{tiny.split['rows'][wnid][k]:08d}.jpg"
                with Image.open(path) as im:
                    assert im.size == (100, 130)
                    want = np.asarray(im.convert("RGB").resize((84, 84), resample=Image.LANCZOS))
                np.testing.assert_array_equal(images[row], want)
    assert not np.array_equal(images[row], np.asarray(Image.open(path).convert("RGB").resize((84, 84))))  # not bicubic


def test_imagenet_rows_are_1_based_positions_among_the_files_sorted_by_number(tiny, tmp_path):
    wnid = tiny.split["classes"]["train"][0]
    folder = tiny.sources["imagenet"] / wnid
    names = [p.name for p in mi.ravi_row_files(folder, [1, 2, 5, 8])]
    assert names == [f"{wnid}_7.JPEG", f"{wnid}_9.JPEG", f"{wnid}_100.JPEG", f"{wnid}_1500.JPEG"]
    rows = tiny.split["rows"][wnid]
    picked = [np.asarray(Image.open(p).convert("RGB")) for p in mi.ravi_row_files(folder, rows)]
    np.testing.assert_array_equal(np.stack(picked), tiny.expected["train"][:4])
    with pytest.raises(DataError, match=rf"{folder}: 8 images {wnid}_N.JPEG, but the split's rows of {wnid} go up to "
                                        "image 9"):
        mi.ravi_row_files(folder, [1, 9])

    source = tmp_path / "imagenet"
    shutil.copytree(tiny.sources["imagenet"], source)
    for split in mi.SPLITS:  # Ravi's CSVs beside the class folders are checked against the split
        (source / f"{split}.csv").write_text("filename,label\n" + "".join(
            f"{w}{i:08d}.jpg,{w}\n" for w in tiny.split["classes"][split] for i in tiny.split["rows"][w]))
    quiet(tmp_path / "ok", source, split_file=tiny.split_file)
    (source / "test.csv").write_text((source / "test.csv").read_text().replace(
        f"{tiny.split['rows'][tiny.split['classes']['test'][0]][0]:08d}.jpg", "00000099.jpg", 1))
    with pytest.raises(DataError, match=f"{source / 'train.csv'}: the CSVs beside the ImageNet folders are not the "
                                        "pinned split tiny"):
        quiet(tmp_path / "data", source, split_file=tiny.split_file)
    assert leftovers(tmp_path / "data") == []


def html_instead(path):
    path.write_text("<html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users have "
                    "viewed or downloaded this file recently.</body></html>")


def cut(path, keep):
    path.write_bytes(path.read_bytes()[:keep(path.stat().st_size)])


def drop_a_class(src):
    wnid = sorted((src / "val").iterdir())[1]
    wnid.rename(wnid.parent / "n09999999")


def drop_an_image(src):
    cls = sorted((src / "train").iterdir())[2]
    sorted(cls.iterdir())[-1].unlink()


def rewrite_pickles(split, jpegs, src, **options):
    for p in src.glob("*.pkl"):
        p.unlink()
    fake.write_pickles(src, split, jpegs, **options)


BAD = {  # format, what to do to the copy, the file the error names, message
    "html pickle": ("pickle", lambda t, s: html_instead(s / "mini-imagenet-cache-train.pkl"),
                    "mini-imagenet-cache-train.pkl", "looks like an HTML page, not a pickle — a quota or login page?"),
    "tiny pickle": ("pickle", lambda t, s: cut(s / "mini-imagenet-cache-validation.pkl", lambda n: 3000),
                    "mini-imagenet-cache-validation.pkl",
                    r"3,000 bytes, too small to be a pickle holding 12 images of 84x84x3: truncated\? "
                    r"\(UnpicklingError"),
    "truncated pickle": ("pickle", lambda t, s: cut(s / "mini-imagenet-cache-test.pkl", lambda n: n - 40),
                         "mini-imagenet-cache-test.pkl", "not a valid pickle, truncated or damaged"),
    "code in a pickle": ("pickle", lambda t, s: (s / "mini-imagenet-cache-train.pkl").write_bytes(
        pickle.dumps({"image_data": np.zeros((20, 84, 84, 3), np.uint8), "run": print})),
        "mini-imagenet-cache-train.pkl", "refusing to load builtins.print"),
    "wrong shape": ("pickle", lambda t, s: rewrite_pickles(t.split, t.jpegs, s, image_data=lambda d: d[:, :80, :80]),
                    "mini-imagenet-cache-train.pkl", r"image_data is uint8 \(20, 80, 80, 3\), expected uint8 "
                                                     r"\[N, 84, 84, 3\]"),
    "wrong dtype": ("pickle", lambda t, s: rewrite_pickles(t.split, t.jpegs, s, image_data=lambda d: d / 255),
                    "mini-imagenet-cache-train.pkl", "image_data is float64"),
    "truncated hdf5": ("hdf5", lambda t, s: cut(s / "val_data.hdf5", lambda n: n - 200), "val_data.hdf5",
                       "not a valid HDF5 file, truncated or damaged"),
    "html hdf5": ("hdf5", lambda t, s: html_instead(s / "test_data.hdf5"), "test_data.hdf5",
                  "looks like an HTML page, not an HDF5 file"),
    "wrong class set": ("folders", lambda t, s: drop_a_class(s), "val",
                        r"the val classes are not those of tiny's split: 1 missing \(n\d{8}\); 1 not in it "
                        r"\(n09999999\)$"),
    "wrong count": ("folders", lambda t, s: drop_an_image(s), "train/n01704323",
                    "class n01704323 has 3 images, expected 4$"),
    "damaged jpeg": ("ravi-images", lambda t, s: cut(next((s / "images").iterdir()), lambda n: n // 3),
                     "images/n", "not a readable image"),
    "missing row": ("ravi-images", lambda t, s: sorted((s / "images").iterdir())[-1].unlink(), "images",
                    r"class n02114548 has 3 images, expected the 4 rows of the split; missing: n02114548\d{8}\.jpg$"),
    "missing class": ("imagenet", lambda t, s: shutil.rmtree(s / "n01930112"), ".",
                      r"the test classes are not those of tiny's split: 1 missing \(n01930112\)$"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_copy_is_one_clear_error_naming_the_file_and_leaves_nothing(case, tiny, tmp_path):
    fmt, damage, named, message = BAD[case]
    src = tmp_path / fmt
    shutil.copytree(tiny.sources[fmt], src)
    damage(tiny, src)
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DataError, match=message) as e:
        quiet(root, src, split_file=tiny.split_file)
    assert str(e.value).startswith(str(src / named)) and "\n" not in str(e.value)
    assert leftovers(root) == []


@pytest.mark.parametrize("make", ["html", "truncated zip", "truncated tar.gz", "not an archive"])
def test_a_bad_archive_is_one_clear_error(make, tiny, tmp_path):
    kind = "gztar" if make.endswith("tar.gz") else "zip"
    path = Path(shutil.make_archive(str(tmp_path / "mini-imagenet"), kind, tiny.sources["pickle"]))
    if make == "html":
        html_instead(path)
    elif make == "not an archive":
        path.write_bytes(b"\x80\x04 a pickle, say")
    else:
        cut(path, lambda n: n // 2)
    message = {"html": "looks like an HTML page, not an archive", "not an archive": "not a zip or tar archive"}.get(
        make, "not a valid archive, truncated or damaged")
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        quiet(tmp_path / "data", path, split_file=tiny.split_file)
    assert leftovers(tmp_path / "data") == []


def test_the_real_split_is_checked_and_every_copy_must_have_600_per_class(tiny, tmp_path):
    pickles = tiny.sources["pickle"]
    with pytest.raises(DataError, match=rf"^{pickles / 'mini-imagenet-cache-train.pkl'}: the train classes are not "
                                        "those of ravi's split: 59 missing"):
        quiet(tmp_path / "data", pickles)
    shutil.copytree(pickles, tmp_path / "cut")
    cut(tmp_path / "cut" / "mini-imagenet-cache-train.pkl", lambda n: n - 40)
    with pytest.raises(DataError, match=r"cache-train.pkl: [\d,]+ bytes, too small to be a pickle holding 38,400 "
                                        r"images of 84x84x3: truncated\? \(UnpicklingError"):
        quiet(tmp_path / "data", tmp_path / "cut")
    with pytest.raises(DataError, match=rf"^{tiny.sources['folders'] / 'train'}: the train classes are not those of "
                                        r"ravi's split: 59 missing \(n01843383, n01910747, .*, … \(54 more\)\)$"):
        quiet(tmp_path / "data", tiny.sources["folders"])
    ravi = mi.read_split()
    four = {**ravi, "rows": {wnid: [1, 2, 3, 4] for wnid in ravi["rows"]}}
    real_classes = fake.write("folders", tmp_path / "src", four, {w: tiny.jpegs["n01532829"] for w in ravi["rows"]})
    with pytest.raises(DataError, match=r"class n01532829 has 4 images, expected 600$"):
        quiet(tmp_path / "data", real_classes)
    assert leftovers(tmp_path / "data") == []


def test_a_missing_h5py_is_a_clear_error_with_the_install_command(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(DataError, match=r"train_data.hdf5: reading torchmeta's HDF5 files needs h5py: pip install "
                                        r"h5py \(or pip install 'suite\[hdf5\]'\)"):
        quiet(tmp_path / "data", tiny.sources["hdf5"], split_file=tiny.split_file)


def test_loading_checks_the_cache(tiny, reference, tmp_path):
    with pytest.raises(DataError, match=r"Mini-ImageNet is not fetched: run `suite fetch miniimagenet --from PATH`"):
        load_miniimagenet(tmp_path, "train")
    with pytest.raises(DataError, match="was made by another version of the code or for another split than ravi.json"):
        load_miniimagenet(reference, "train")
    root = tmp_path / "copy"
    shutil.copytree(reference, root)
    cut(root / "miniimagenet" / "val.npy", lambda n: n - 84)
    with pytest.raises(DataError, match=r"val.npy: [\d,]+ bytes, miniimagenet.json says [\d,]+; run `suite fetch "
                                        "miniimagenet` again"):
        load_miniimagenet(root, "train", tiny.split_file)
    messages = []  # fetching again notices it and rebuilds
    fetch_miniimagenet(root, tiny.sources["ravi-images"], split_file=tiny.split_file, progress=False,
                       log=messages.append)
    assert "fetching again" in messages[0] and cache_files(root) != {}
    assert cache_files(root)["val.npy"] == cache_files(reference)["val.npy"]
    before = (root / "miniimagenet" / "train.npy").stat().st_mtime_ns
    messages.clear()
    fetch_miniimagenet(root, tiny.sources["pickle"], split_file=tiny.split_file, progress=False, log=messages.append)
    assert "already fetched and verified" in messages[0]
    assert (root / "miniimagenet" / "train.npy").stat().st_mtime_ns == before


def test_generated_has_the_real_classes_and_says_so(generated):
    ravi = mi.read_split()
    meta = json.loads((mi.cache_dir(generated) / "miniimagenet.json").read_text())
    assert meta["generated"] is True and meta["format"] == "generated" and meta["images_per_class"] == 20
    assert meta["classes"] == ravi["classes"] and meta["split"] == "ravi"
    images, classes, _ = load_miniimagenet(generated, "test")
    assert images.shape == (400, 84, 84, 3) and list(classes) == ravi["classes"]["test"]
    means = images.reshape(20, 20, -1).mean(axis=2)  # images of a class share its pattern
    assert means.std(axis=1).mean() < means.mean(axis=1).std() / 4


def test_the_generated_stand_in_and_real_data_replace_each_other_only_one_way(tiny, reference, tmp_path, monkeypatch):
    monkeypatch.setattr(mi, "SPLIT_FILE", tiny.split_file)
    root = tmp_path / "data"
    quiet(root, generated=True)
    assert json.loads(cache_files(root)["miniimagenet.json"])["generated"] is True
    quiet(root, tiny.sources["hdf5"])  # the real data replaces the stand-in
    assert cache_files(root)["train.npy"] == cache_files(reference)["train.npy"]
    with pytest.raises(DataError, match=f"{mi.cache_dir(root)} holds real Mini-ImageNet \\(hdf5\\); delete that "
                                        "folder to replace it by the generated stand-in"):
        quiet(root, generated=True)
    assert cache_files(root)["train.npy"] == cache_files(reference)["train.npy"]


def tasks(data, ways=5):
    sha = hashlib.sha256(family.split_path("ravi").read_bytes()).hexdigest()
    return family.Tasks(split="ravi", split_sha256=sha, ways=ways, loss_normalisation="mean", data_dir=data)


def test_the_family_samples_valid_reproducible_tasks(generated):
    images, classes, _ = load_miniimagenet(generated, "val")
    where = {images[i].tobytes(): (wnid, i) for wnid, rows in classes.items() for i in rows}
    family_ = tasks(generated)
    batch = family_.sample(6, 2, 3, torch.Generator().manual_seed(0), split="val")
    assert batch.support_x.shape == (6, 10, 3, 84, 84) and batch.query_x.shape == (6, 15, 3, 84, 84)
    assert batch.support_x.dtype == torch.float32 and 0 <= batch.support_x.min() and batch.support_x.max() <= 1
    assert batch.support_y.tolist()[0] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert batch.query_y.tolist()[0] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    for t in range(6):
        x = torch.cat([batch.support_x[t], batch.query_x[t]]).permute(0, 2, 3, 1).mul(255).round().to(torch.uint8)
        y = torch.cat([batch.support_y[t], batch.query_y[t]])
        found = [where[img.numpy().tobytes()] for img in x]  # every image is one of the split's, channels first
        assert len({i for _, i in found}) == 25  # distinct images
        label_class = {}
        for (wnid, _), label in zip(found, y.tolist()):
            assert label_class.setdefault(label, wnid) == wnid  # one class per label
        assert len(set(label_class.values())) == 5  # distinct classes
    again = family_.sample(6, 2, 3, torch.Generator().manual_seed(0), split="val")
    assert all(torch.equal(a, b) for a, b in zip(batch.tensors(), again.tensors()))
    other = family_.sample(6, 2, 3, torch.Generator().manual_seed(1), split="val")
    assert not torch.equal(batch.support_x, other.support_x)
    assert family_.provenance == {
        "dataset": "miniimagenet", "split": "ravi", "generated": True, "format": "generated", "images_per_class": 20,
        "sha256": {s: hashlib.sha256((mi.cache_dir(generated) / f"{s}.npy").read_bytes()).hexdigest()
                   for s in mi.SPLITS}}
    with pytest.raises(ValueError, match="5 shots \\+ 16 queries per class, but the generated stand-in has 20 images"):
        family_.sample(1, 5, 16, torch.Generator(), split="train")
    with pytest.raises(ValueError, match="20-way tasks need 20 classes, the val split has 16"):
        tasks(generated, ways=20).sample(1, 1, 1, torch.Generator(), split="val")


def test_the_family_checks_the_protocol():
    config = {"split": "ravi", "split_sha256": hashlib.sha256(mi.SPLIT_FILE.read_bytes()).hexdigest(), "ways": 5,
              "loss_normalisation": "sum/shots"}
    conv = {"kind": "conv", "in_channels": 3, "image_size": 84}
    family.check(config, "task")
    family.check_protocol(config, conv, [("train", 5, 15), ("test", 300, 300)], "claim 'x'")
    assert family.loss_scale(config) == 5.0 and family.output_dim(config) == 5 and family.INPUT_DIM == 3
    with pytest.raises(ManifestError, match="task.split_sha256: ravi.json has sha256"):
        family.check({**config, "split_sha256": "0" * 64}, "task")
    with pytest.raises(ManifestError, match="needs a conv model with in_channels 3 and image_size 84"):
        family.check_protocol(config, {**conv, "in_channels": 1}, [], "claim 'x'")
    with pytest.raises(ManifestError, match="300 shots \\+ 301 queries per class, but Mini-ImageNet has 600 images"):
        family.check_protocol(config, conv, [("test", 300, 301)], "claim 'x'")
    with pytest.raises(ManifestError, match="20-way tasks from the val split of ravi.json, which has 16 classes"):
        family.check_protocol({**config, "ways": 20}, conv, [("val", 1, 1)], "claim 'x'")


def test_a_claim_can_use_the_family(tmp_path):
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    claim = copy.deepcopy(raw["claims"]["omniglot-maml"])
    claim["task"] = {"family": "miniimagenet", "split": "ravi",
                     "split_sha256": hashlib.sha256(mi.SPLIT_FILE.read_bytes()).hexdigest(), "ways": 5,
                     "loss_normalisation": "sum/shots"}
    claim["model"].update(in_channels=3, image_size=84)
    # not every Omniglot variant fits Mini-ImageNet: best-validation meta-validates 20-way on 16 val classes
    for body in (claim, *claim["profiles"].values()):
        body.get("sensitivity", {}).pop("best-validation", None)
    raw["claims"]["mini"] = claim
    raw["datasets"] = sorted(set(raw["datasets"]) | {"miniimagenet"})
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_manifest(path).claim("mini").body()["task"]["family"] == "miniimagenet"
    claim["model"]["in_channels"] = 1
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ManifestError, match="Mini-ImageNet needs a conv model with in_channels 3"):
        load_manifest(path)


def fetch_cli(data, *args, env=None):
    return CliRunner().invoke(main, ["--data", str(data), "fetch", "miniimagenet", "--no-progress", *args], env=env)


def one_line_error(result, start):
    """The error is the last line, one line (progress messages may come before it)."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith(f"Error: {start}") and result.output.count("Error") == 1, result.output


def test_the_cli(tiny, reference, tmp_path, monkeypatch):
    data = tmp_path / "data"
    one_line_error(fetch_cli(data, "--url", "https://example.org/mini.tar"), "--url https://example.org/mini.tar "
                                                                             "needs --sha256")
    one_line_error(fetch_cli(data, "--sha256", "0" * 64), "--sha256 goes with --url")
    one_line_error(fetch_cli(data, "--generated", "--from", str(tiny.sources["pickle"])),
                   "give only one of --from and --generated")
    one_line_error(fetch_cli(data), "Mini-ImageNet has no official download: give --from PATH")
    one_line_error(CliRunner().invoke(main, ["--data", str(data), "fetch", "omniglot", "--generated"]),
                   "--url, --sha256 and --generated are for miniimagenet, not omniglot")
    one_line_error(fetch_cli(data, "--from", str(tiny.sources["folders"])), f"{tiny.sources['folders'] / 'train'}: "
                                                                            "the train classes are not those of ravi's")
    assert leftovers(data) == []

    monkeypatch.setattr(mi, "SPLIT_FILE", tiny.split_file)
    result = fetch_cli(data, "--from", str(tiny.sources["imagenet"]))
    assert result.exit_code == 0, result.output
    assert "classes train 5, val 3, test 3 x 4 images cached in" in result.output
    assert cache_files(data)["test.npy"] == cache_files(reference)["test.npy"]
    mirror = tmp_path / "mirror"  # SUITE_FETCH_FROM=DIR takes DIR/miniimagenet
    shutil.copytree(tiny.sources["ravi-images"], mirror / "miniimagenet")
    result = fetch_cli(tmp_path / "env", env={"SUITE_FETCH_FROM": str(mirror)})
    assert result.exit_code == 0, result.output
    assert json.loads(cache_files(tmp_path / "env")["miniimagenet.json"])["source"] == str(mirror / "miniimagenet")
    archive = shutil.make_archive(str(tmp_path / "mini"), "zip", tiny.sources["hdf5"])
    digest = hashlib.sha256(Path(archive).read_bytes()).hexdigest()
    result = fetch_cli(tmp_path / "url", "--url", Path(archive).as_uri(), "--sha256", digest)
    assert result.exit_code == 0, result.output
    assert cache_files(tmp_path / "url")["val.npy"] == cache_files(reference)["val.npy"]


def test_a_result_and_a_trained_model_belong_to_the_data_they_came_from(generated, tmp_path):
    """Smoke runs on the generated stand-in: the result says so, its checkpoints are keyed by the data, and a
    result measured on other data is never silently returned as this data's."""
    from suite.protocol.manifest import load_manifest
    from suite.training.layout import checkpoint_dir

    results = tmp_path / "results"
    run = ["--data", str(generated), "--results", str(results), "run", "--claim", "anil-miniimagenet", "--profile",
           "smoke", "--run", "anil-n5-k1", "--device", "cpu", "--no-progress"]
    first = CliRunner().invoke(main, run)
    assert first.exit_code == 0, first.output
    assert "smoke, generated data — not a reproduction" in first.output
    path = results / "anil-miniimagenet" / "smoke" / "anil-n5-k1" / "seed0" / "results.json"
    record = json.loads(path.read_text())
    assert record["provenance"]["data"]["generated"] is True
    cfg = load_manifest(REPO / "benchmarks.yaml").claim("anil-miniimagenet").run_configs("smoke", runs=["anil-n5-k1"])[0]
    data = record["provenance"]["data"]
    assert (checkpoint_dir(results, cfg, data, record["path"]) / "final.pt").is_file()
    assert checkpoint_dir(results, cfg, dict(data, generated=False), record["path"]) != \
        checkpoint_dir(results, cfg, data, record["path"])
    record["provenance"]["data"] = dict(data, generated=False, format="pickle")  # as if measured on a real copy
    path.write_text(json.dumps(record))
    again = CliRunner().invoke(main, run)
    assert again.exit_code == 1 and "was measured on other data" in again.output, again.output
    assert "pickle" in again.output and "Pass --overwrite" in again.output
