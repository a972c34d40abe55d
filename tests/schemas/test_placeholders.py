from schemas import placeholders


def test_split_referenced_render():
    text = "Is <obj0> left of <obj12>? <obj0>!"
    assert placeholders.split(text) == ["Is ", 0, " left of ", 12, "? ", 0, "!"]
    assert placeholders.referenced(text) == [0, 12, 0]
    assert placeholders.render(text, lambda i: f"[R{i}]") == "Is [R0] left of [R12]? [R0]!"
    assert placeholders.obj(3) == "<obj3>"
    assert placeholders.split("<obj1>") == [1]
    assert placeholders.split("") == []


def test_leading_zero_is_not_canonical():
    assert placeholders.referenced("<obj01>") == []
    assert placeholders.foreign_tokens("<obj01> <obj1>") == ["<obj01>"]


def test_foreign_tokens_of_every_dialect():
    text = "<image>\n<video> <region1> <region> <Region 2> <REGION> <mask><pos> <Mark 3> <object0> <obj 1> ok <obj0>"
    assert placeholders.foreign_tokens(text) == [
        "<image>", "<video>", "<region1>", "<region>", "<Region 2>", "<REGION>", "<mask>", "<pos>",
        "<Mark 3>", "<object0>", "<obj 1>",
    ]
    assert placeholders.foreign_tokens("a < b > c, x<y") == []
