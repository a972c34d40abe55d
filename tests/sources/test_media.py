"""sources.media: media bytes and frames looked up in the declared roots, tar members included;
missing media is a FileNotFoundError, a path leaving the roots a Reject, out-of-range frames are
refused without decoding."""

import io
import tarfile

import pytest
from PIL import Image

from schemas import Reject, Sample
from sources.imagedecode import ImageDecodeError
from sources.media import MissingFrame, load_frames, read_media_bytes
from sources.roots import Roots
from sources.videorefer import write_clip

RED = (220, 40, 40)


def png(size=(8, 6), color=RED):
    data = io.BytesIO()
    Image.new("RGB", size, color).save(data, format="PNG")
    return data.getvalue()


def sample(**media):
    return Sample.model_validate({
        "id": "t/s/1", "source": "t", "subset": "s", "split": "train", "license": "x", "task": "general_qa",
        "media": media, "conversation": [{"role": "user", "text": "Hi."}, {"role": "assistant", "text": "Hello."}],
        "provenance": {"file": "f", "locator": "0", "adapter": "t", "adapter_version": "1"}})


@pytest.fixture()
def roots(tmp_path):
    """An annotation root and a media root holding a file, a tar of images and a 3-frame clip."""
    (tmp_path / "ann").mkdir()
    (tmp_path / "media/images").mkdir(parents=True)
    (tmp_path / "media/images/a.png").write_bytes(png())
    with tarfile.open(tmp_path / "media/shard.tar", "w") as tar:
        info = tarfile.TarInfo("sub/k.png")
        data = png((4, 3))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    write_clip(tmp_path / "media/clip.mp4")
    return Roots.of(tmp_path / "ann", media=[tmp_path / "media"])


def test_bytes_come_from_the_first_root_that_holds_the_file(roots, tmp_path):
    assert read_media_bytes(roots, "images/a.png") == png()
    (tmp_path / "ann/images").mkdir()
    (tmp_path / "ann/images/a.png").write_bytes(b"annotation root first")
    assert read_media_bytes(roots, "images/a.png") == b"annotation root first"
    assert read_media_bytes(tmp_path / "media", "images/a.png") == png()  # a plain folder is one root


def test_tar_members_are_read_from_the_archive_in_the_roots(roots):
    assert read_media_bytes(roots, "shard.tar/sub/k.png") == png((4, 3))
    with pytest.raises(FileNotFoundError, match=r"shard.tar has no file member 'sub/none.png'"):
        read_media_bytes(roots, "shard.tar/sub/none.png")
    with pytest.raises(FileNotFoundError):
        read_media_bytes(roots, "none.tar/k.png")


def test_missing_media_is_file_not_found_and_escapes_are_rejects(roots, tmp_path):
    with pytest.raises(FileNotFoundError, match="no media file at .*ann/images/b.png"):
        read_media_bytes(roots, "images/b.png")
    (tmp_path / "outside.png").write_bytes(png())
    (tmp_path / "media/images/link.png").symlink_to(tmp_path / "outside.png")
    for relative in ("../outside.png", "images/link.png", "/etc/passwd"):
        with pytest.raises(Reject) as err:
            read_media_bytes(roots, relative)
        assert err.value.reason == "path_escapes_root"


def test_image_frames_are_decoded_and_resized_to_the_media_size(roots):
    (frame,) = load_frames(sample(kind="image", path="shard.tar/sub/k.png", width=8, height=6), roots, [0]).values()
    assert frame.shape == (6, 8, 3) and tuple(frame[3, 4]) == RED
    folder = sample(kind="video", path="images", frames=["images/a.png"], width=8, height=6)
    assert tuple(load_frames(folder, roots, [0])[0][0, 0]) == RED


def test_an_undecodable_image_names_its_reason(roots, tmp_path):
    (tmp_path / "media/images/bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError) as err:
        load_frames(sample(kind="image", path="images/bad.png", width=8, height=6), roots, [0])
    assert err.value.reason == "image_unreadable"


def test_video_frames_by_decode_index(roots):
    frames = load_frames(sample(kind="video", path="clip.mp4", num_frames=3, fps=3.0, width=32, height=24), roots, [2, 0])
    assert sorted(frames) == [0, 2] and frames[2].shape == (24, 32, 3)
    with pytest.raises(MissingFrame, match=r"clip.mp4 has no frame 5 \(decoded 3 frames\)"):
        load_frames(sample(kind="video", path="clip.mp4", width=32, height=24), roots, [5])  # no count: decoded to the end


def test_frames_past_a_known_count_are_refused_without_reading(roots, tmp_path):
    (tmp_path / "media/garbage.mp4").write_bytes(b"not a video")  # decoding it would raise av's error instead
    video = sample(kind="video", path="garbage.mp4", num_frames=3, width=32, height=24)
    with pytest.raises(MissingFrame, match=r"garbage.mp4 has no frame 2147483648 \(it has 3 frames\)$"):
        load_frames(video, roots, [0, 2**31])
    folder = sample(kind="video", path="images", frames=["images/a.png"], width=8, height=6)
    with pytest.raises(MissingFrame, match=r"images has no frame 1 \(it has 1 frames\)$"):
        load_frames(folder, roots, [1])
