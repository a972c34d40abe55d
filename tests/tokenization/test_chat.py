"""Token-exact chat rendering with the built-in character tokenizer (id(c) = ord(c) - 30)."""

import pytest

from schemas import Reject, Turn
from tests.factories import image_sample, video_sample
from tokenization.chat import IGNORE_INDEX, RenderConfig, VisualTokens, add_special_tokens, render
from train.tokenizer import char_tokenizer

S, E, IMG, REG = 97, 98, 99, 100  # <|im_start|> <|im_end|> <image> <REGION>
X = IGNORE_INDEX


def t(text: str) -> list[int]:
    return [1 if c == "\n" else ord(c) - 30 for c in text]


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def test_image_sample_pixelrefer(tok):
    out = render(image_sample(), VisualTokens(frame_tokens=[3], region_tokens=[[2]]), tok)
    system = [S] + t("system\nAnswer with a category name.") + [E] + t("\n")
    user = [S] + t("user\n") + [IMG] * 3 + t("\nWhat is <obj0>[") + [REG, REG] + t("]?") + [E] + t("\n")
    answer = [S] + t("assistant\ncar") + [E] + t("\n")
    assert out.input_ids == system + user + answer
    assert out.labels == [X] * len(system + user) + [X] * 11 + t("car") + [E, X]
    assert out.region_order == [0] and out.turns_kept == 3


def test_video_multi_turn_multi_object_pixelrefer(tok):
    visual = VisualTokens(frame_tokens=[2, 1], frame_times=[0.0, 1.5], region_tokens=[[1, 3], [2]])
    out = render(video_sample(), visual, tok)
    user1 = ([S] + t("user\nTime 0.0s:") + [IMG] * 2 + t(",Time 1.5s:") + [IMG] + t("\nWhere does <obj0>[")
             + [REG] + t("][") + [REG] * 3 + t("] go relative to <obj1>[") + [REG] * 2 + t("]?") + [E] + t("\n"))
    answer1 = [S] + t("assistant\n<obj0> moves toward <obj1>.") + [E] + t("\n")
    user2 = [S] + t("user\nAnd then?") + [E] + t("\n")
    answer2 = [S] + t("assistant\nIt stops.") + [E] + t("\n")
    assert out.input_ids == user1 + answer1 + user2 + answer2
    supervised = [i for i in out.labels if i != X]
    assert supervised == t("<obj0> moves toward <obj1>.") + [E] + t("It stops.") + [E]
    assert out.region_order == [0, 1]


def test_lite_video_has_no_global_tokens_and_timed_groups(tok):
    # region 0 is on frames 0 and 2 (times 0.0 and 0.67 s), region 1 only on frame 1 (frame 2 missing)
    out = render(video_sample(), VisualTokens(), tok, RenderConfig(layout="lite", lite_tokens=2))
    user1 = ([S] + t("user\nWhere does <obj0>[Time 0.0:") + [REG] * 2 + t(",Time 0.7:") + [REG] * 2
             + t("] go relative to <obj1>[Time 0.3:") + [REG] * 2 + t("]?") + [E] + t("\n"))
    assert out.input_ids[: len(user1)] == user1
    assert IMG not in out.input_ids


def test_lite_image_uses_n_tokens(tok):
    out = render(image_sample(), VisualTokens(), tok, RenderConfig(layout="lite", lite_tokens=4))
    assert out.input_ids.count(REG) == 4 and IMG not in out.input_ids


def test_truncation_drops_whole_trailing_rounds(tok):
    visual = VisualTokens(frame_tokens=[2, 1], frame_times=[0.0, 1.5], region_tokens=[[1, 3], [2]])
    full = render(video_sample(), visual, tok)
    two_turns = len(full.input_ids) - len(t("user\nAnd then?assistant\nIt stops.\n\n")) - 4
    out = render(video_sample(), visual, tok, RenderConfig(max_length=len(full.input_ids) - 1))
    assert out.turns_kept == 2 and out.input_ids == full.input_ids[:two_turns]
    assert out.input_ids[-2:] == [E, 1] and out.input_ids.count(REG) == 6


def test_over_long_sample_is_rejected_not_cut(tok):
    with pytest.raises(Reject) as err:
        render(image_sample(), VisualTokens(frame_tokens=[3], region_tokens=[[2]]), tok, RenderConfig(max_length=20))
    assert err.value.reason == "too_long" and err.value.locator == "lvis/val2017/42"


def test_round_mentioning_a_region_is_never_dropped(tok):
    sample = video_sample()
    sample.conversation[2] = Turn(role="user", text="And <obj1>?")
    sample.conversation[0] = Turn(role="user", text="Where does <obj0> go?")
    sample.conversation[1] = Turn(role="assistant", text="Left.")
    visual = VisualTokens(frame_tokens=[1, 1], frame_times=[0.0, 1.0], region_tokens=[[1, 1], [1]])
    full = render(sample, visual, tok)
    with pytest.raises(Reject, match="too_long"):
        render(sample, visual, tok, RenderConfig(max_length=len(full.input_ids) - 1))


def test_count_mismatch_is_rejected(tok):
    with pytest.raises(Reject) as err:
        render(image_sample(), VisualTokens(frame_tokens=[3], region_tokens=[[2, 2]]), tok)
    assert err.value.reason == "token_count_mismatch"
    assert "region token counts per region [2], region frames [1]" in err.value.message


def test_tokenizer_without_specials_is_refused():
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    bare = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")))
    with pytest.raises(ValueError, match="add_special_tokens"):
        render(image_sample(), VisualTokens(frame_tokens=[1], region_tokens=[[1]]), bare)
    assert add_special_tokens(bare) == 5 and add_special_tokens(bare) == 0


def test_memoised_pieces_are_never_shared_between_renders(tok):
    # the encoder memoises short pieces ("[", "]", "Time 0.0:"); a caller extending a returned list must not alter them
    cfg = RenderConfig(layout="lite", lite_tokens=2)
    first = render(video_sample(), VisualTokens(), tok, cfg)
    again = render(video_sample(), VisualTokens(), tok, cfg)
    assert again.input_ids == first.input_ids and again.labels == first.labels


def text_only():
    """A text-only general_qa sample (LLaVA-OneVision's text parts): no media, no regions."""
    return image_sample(id="llava/onevision/t1", source="llava", subset="onevision", task="general_qa", media=None,
                        regions=[], conversation=[Turn(role="user", text="What is 2 + 2?"), Turn(role="assistant", text="4")])


@pytest.mark.parametrize("layout", ["pixelrefer", "lite"])
def test_text_only_sample_renders_as_the_plain_chat_template(tok, layout):
    out = render(text_only(), VisualTokens(), tok, RenderConfig(layout=layout))
    plain = "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
    user = [S] + t("user\nWhat is 2 + 2?") + [E] + t("\n")
    assert out.input_ids == user + [S] + t("assistant\n4") + [E] + t("\n") == tok.encode(plain, add_special_tokens=False)
    assert out.labels == [X] * len(user) + [X] * 11 + t("4") + [E, X]
    assert out.region_order == [] and out.turns_kept == 2


def test_text_only_sample_given_frame_tokens_is_rejected(tok):
    with pytest.raises(Reject) as err:
        render(text_only(), VisualTokens(frame_tokens=[3]), tok)
    assert (err.value.reason, err.value.message) == ("token_count_mismatch", "1 global frame counts for a text-only sample")
