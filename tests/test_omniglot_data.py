"""Omniglot fetch on the real data: verified by content, cached at 28x28, and every bad input one clear error
that leaves nothing in the data folder."""
import hashlib
import io
import shutil
import struct
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from pathlib import Path
from PIL import Image

from suite.cli import main
from suite.data import DataError
from suite.protocol.folders import folder
from suite.data import omniglot
from suite.data.download import download
from suite.data.omniglot import fetch_omniglot, load_omniglot

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
needs_data = pytest.mark.skipif(
    not all((SHARED / f"{part}.zip").is_file() for part in omniglot.PARTS),
    reason=f"the real Omniglot archives are not in {SHARED} (shared/data/omniglot beside the repository)")

MAGI_01 = "images_background/Alphabet_of_the_Magi/character01"


def fetch_cli(data, *args):
    return CliRunner().invoke(main, ["--data", str(data), "fetch", "omniglot", "--no-progress", *args])


def leftovers(data: Path) -> list:
    return sorted(data.rglob("*")) if data.exists() else []


def cache_arrays(data: Path) -> dict:
    with np.load(omniglot.cache_path(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def assert_same_cache(a: Path, b: Path):
    x, y = cache_arrays(a), cache_arrays(b)
    assert x.keys() == y.keys()
    for k in x:
        np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.fixture(scope="session")
def fetched(tmp_path_factory):
    """The real data, fetched once through the CLI from the shared zips."""
    data = tmp_path_factory.mktemp("fetched") / "datasets"
    result = fetch_cli(data, "--from", str(SHARED))
    assert result.exit_code == 0, result.output
    return data


def test_data_root_is_explicit_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("SUITE_DATA", raising=False)
    assert folder("data", None) == Path("datasets")
    monkeypatch.setenv("SUITE_DATA", "/somewhere")
    assert folder("data", None) == Path("/somewhere") and folder("data", "mine") == Path("mine")


def test_loading_before_fetching_says_how_to_fetch(tmp_path):
    with pytest.raises(DataError, match=r"Omniglot is not fetched: run `suite fetch omniglot` \(or `suite fetch "
                                        r"omniglot --from PATH`\)"):
        load_omniglot(tmp_path)


@needs_data
def test_fetch_from_the_shared_zips_gives_the_binary_28x28_cache(fetched):
    assert [p.relative_to(fetched).as_posix() for p in leftovers(fetched)] == ["omniglot", "omniglot/omniglot-28.npz"]
    images, characters = load_omniglot(fetched)
    assert images.shape == (1623, 20, 28, 28) and images.dtype == np.uint8
    assert set(np.unique(images)) == {0, 255}
    assert 0.03 < (images == 255).mean() < 0.2  # strokes are 255 and a minority of the pixels
    assert (images[:, :, 0, :] == 0).mean() > 0.99  # the border is background
    background = [c for c in characters if c.startswith("images_background/")]
    assert characters[:964] == background == sorted(background)
    assert characters[964:] == sorted(characters[964:]) and characters[-1] == "images_evaluation/ULOG/character26"
    assert len({c.split("/")[1] for c in background}) == 30 and len({c.split("/")[1] for c in characters[964:]}) == 20
    assert characters[0] == MAGI_01
    cache = cache_arrays(fetched)
    for part in omniglot.PARTS:
        assert str(cache[f"digest_{part}"]) == omniglot.pinned()[part]["digest"]

    # Decoded independently: drawer RR of a character is file IIII_RR.png; resizing a 1-bit image with
    # LANCZOS (as MAML's script asks) is nearest neighbour in Pillow; strokes (False) become 255.
    with zipfile.ZipFile(SHARED / "images_background.zip") as zf:
        for drawer in (1, 7, 20):
            with Image.open(io.BytesIO(zf.read(f"{MAGI_01}/0709_{drawer:02d}.png"))) as im:
                assert im.mode == "1" and im.size == (105, 105)
                lanczos = np.asarray(im.resize((28, 28), resample=Image.LANCZOS))
                nearest = np.asarray(im.resize((28, 28), resample=Image.NEAREST))
            np.testing.assert_array_equal(lanczos, nearest)
            np.testing.assert_array_equal(images[0, drawer - 1], np.where(nearest, 0, 255))


@needs_data
def test_fetching_again_does_nothing_and_says_so(fetched):
    cache = omniglot.cache_path(fetched)
    before = cache.stat().st_mtime_ns
    result = fetch_cli(fetched, "--from", str(SHARED))
    assert result.exit_code == 0, result.output
    assert "already fetched and verified" in result.output and "nothing to do" in result.output
    assert cache.stat().st_mtime_ns == before


@needs_data
def test_fetch_from_the_extracted_folders_gives_the_same_cache(fetched, tmp_path):
    src = tmp_path / "python"
    for part in omniglot.PARTS:
        with zipfile.ZipFile(SHARED / f"{part}.zip") as zf:
            zf.extractall(src)
    (src / "images_background" / ".DS_Store").write_bytes(b"\0junk")  # not an image: ignored
    fetch_omniglot(tmp_path / "data", src, progress=False, log=lambda msg: None)
    assert_same_cache(fetched, tmp_path / "data")


@needs_data
def test_fetch_downloads_from_the_first_mirror_that_works(fetched, tmp_path, monkeypatch):
    missing = (tmp_path / "gone.zip").as_uri()
    monkeypatch.setattr(omniglot, "URLS", {p: [missing, (SHARED / f"{p}.zip").as_uri()] for p in omniglot.PARTS})
    monkeypatch.setattr(omniglot, "MD5", {p: hashlib.md5((SHARED / f"{p}.zip").read_bytes()).hexdigest()
                                          for p in omniglot.PARTS})
    data = tmp_path / "data"
    fetch_omniglot(data, None, progress=False, log=lambda msg: None)
    assert_same_cache(fetched, data)
    assert [p.relative_to(data).as_posix() for p in leftovers(data)] == ["omniglot", "omniglot/omniglot-28.npz"]


@needs_data
def test_a_download_with_the_wrong_md5_is_a_clear_error_that_leaves_nothing(tmp_path, monkeypatch):
    urls = [(SHARED / "images_background.zip").as_uri(), (tmp_path / "gone.zip").as_uri()]
    monkeypatch.setattr(omniglot, "URLS", {p: urls for p in omniglot.PARTS})
    data = tmp_path / "data"
    with pytest.raises(DataError) as e:
        fetch_omniglot(data, None, progress=False, log=lambda msg: None)
    msg = str(e.value)
    assert msg.startswith("could not download images_background.zip from any of 2 mirror(s)") and "\n" not in msg
    assert f"md5 {hashlib.md5((SHARED / 'images_background.zip').read_bytes()).hexdigest()}" in msg
    assert f"expected {omniglot.MD5['images_background']}" in msg
    assert urls[1] in msg and "No such file" in msg
    assert leftovers(data) == []


def test_download_detects_an_html_page_and_keeps_no_partial_file(tmp_path):
    page = tmp_path / "page.zip"
    page.write_text("\n  <!DOCTYPE html><html><body>Download quota exceeded</body></html>")
    dest = tmp_path / "out" / "images_background.zip"
    with pytest.raises(DataError, match="looks like an HTML page, not a zip archive — a quota or login page?"):
        download([page.as_uri()], dest, "0" * 32, progress=False)
    assert leftovers(dest.parent) == []
    good = tmp_path / "good.bin"
    good.write_bytes(b"PK\3\4 some bytes")
    assert download([page.as_uri(), good.as_uri()], dest, hashlib.md5(good.read_bytes()).hexdigest(),
                    progress=False) == dest
    assert dest.read_bytes() == good.read_bytes() and leftovers(dest.parent) == [dest]


def rewrite(src: Path, dst: Path, drop=lambda name: False, replace=None):
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if not drop(info.filename):
                zout.writestr(info, replace.get(info.filename) or zin.read(info))


def flip_a_stored_byte(src: Path, dst: Path, name: str):
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(name)
    assert info.compress_type == zipfile.ZIP_STORED
    start = info.header_offset + 30 + sum(struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30]))
    raw[start + info.compress_size // 2] ^= 0xFF
    dst.write_bytes(raw)


def with_one_pixel_flipped(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as im:
        im = im.copy()
    im.putpixel((50, 50), 255 - im.getpixel((50, 50)))
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


def make_truncated(src, dst):
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])


def make_html(src, dst):
    dst.write_text("<html><head><title>Sign in</title></head><body>Please log in</body></html>")


def make_bad_crc(src, dst):
    flip_a_stored_byte(src, dst, f"{MAGI_01}/0709_05.png")


def make_missing_alphabet(src, dst):
    rewrite(src, dst, drop=lambda name: name.startswith(("images_background/Braille/",
                                                         "images_background/Futurama/")))


def drawer_of(src, character, drawer):
    with zipfile.ZipFile(src) as zf:
        [name] = [n for n in zf.namelist() if n.startswith(character + "/") and n.endswith(f"_{drawer:02d}.png")]
    return name


def make_missing_image(src, dst):
    name = drawer_of(src, "images_background/Korean/character04", 11)
    rewrite(src, dst, drop=lambda n: n == name)


def make_changed_png(src, dst):
    name = drawer_of(src, "images_background/Greek/character03", 17)
    with zipfile.ZipFile(src) as zf:
        rewrite(src, dst, replace={name: with_one_pixel_flipped(zf.read(name))})


BAD_ARCHIVES = {
    "truncated": (make_truncated, r"not a valid zip archive, truncated or damaged \(File is not a zip file\)"),
    "html page": (make_html, "looks like an HTML page, not a zip archive — a quota or login page?"),
    "bad crc": (make_bad_crc, rf"not a valid zip archive, truncated or damaged \(Bad CRC-32 for file '{MAGI_01}/"),
    "missing alphabets": (make_missing_alphabet, "2 of the 30 images_background alphabets are missing: Braille, "
                                                 "Futurama$"),
    "missing image": (make_missing_image, r"wrong number of images: 964 characters and 19,279 images, expected 964 "
                                          r"and 19,280 .*incomplete: images_background/Korean/character04$"),
    "changed png": (make_changed_png, "the content differs from the pinned Omniglot images_background"),
}


@needs_data
@pytest.mark.parametrize("case", BAD_ARCHIVES)
def test_a_bad_archive_is_one_clear_error_naming_it_and_leaves_nothing(case, tmp_path):
    make, message = BAD_ARCHIVES[case]
    src = tmp_path / "src"
    src.mkdir()
    make(SHARED / "images_background.zip", src / "images_background.zip")
    shutil.copy(SHARED / "images_evaluation.zip", src)
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(DataError, match=message) as e:
        fetch_omniglot(data, src, progress=False, log=lambda msg: None)
    assert str(e.value).startswith(f"{src / 'images_background.zip'}: ") and "\n" not in str(e.value)
    assert leftovers(data) == []


@needs_data
def test_the_cli_prints_a_bad_archive_or_folder_as_one_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_html(None, src / "images_background.zip")
    result = fetch_cli(tmp_path / "data", "--from", str(src))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "images_evaluation.zip (or images_evaluation/)" in result.output

    shutil.copy(SHARED / "images_evaluation.zip", src)
    result = fetch_cli(tmp_path / "data", "--from", str(src))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {src / 'images_background.zip'}: looks like an HTML page")
    assert leftovers(tmp_path / "data") == []


def test_a_clone_of_the_omniglot_repository_is_found_through_its_python_folder(tmp_path):
    (tmp_path / "python").mkdir()
    for part in omniglot.PARTS:
        (tmp_path / "python" / f"{part}.zip").touch()
    assert omniglot._locate(tmp_path) == {p: tmp_path / "python" / f"{p}.zip" for p in omniglot.PARTS}


@needs_data
def test_a_cache_from_other_data_is_refused(fetched, tmp_path):
    arrays = cache_arrays(fetched)
    arrays["digest_images_evaluation"] = np.array("0" * 64)
    cache = omniglot.cache_path(tmp_path)
    cache.parent.mkdir()
    np.savez_compressed(cache, **arrays)
    with pytest.raises(DataError, match="was made from other Omniglot data"):
        load_omniglot(tmp_path)
    cache.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="damaged Omniglot cache"):
        load_omniglot(tmp_path)
