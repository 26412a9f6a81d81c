"""core.suggest: the one did-you-mean rule."""

from edge_backbones.core.suggest import did_you_mean, suggest


def test_look_alike_characters_are_near():
    names = [f"mit_b{i}" for i in range(6)]
    # o for 0: the look-alike, not every mit_b* tied as difflib ranks them
    assert suggest("mit_bo", names) == ["mit_b0"]
    assert suggest("zzzzzz", names) == []


def test_did_you_mean_names_the_closest_option():
    known = ["modes", "image_size", "out"]
    assert did_you_mean("modez", known) == " (did you mean 'modes'?)"
    assert did_you_mean("image_sise", known) == " (did you mean 'image_size'?)"
    assert did_you_mean("zzz", known) == ""


def test_s_for_z_beats_another_letter():
    assert suggest("modez", ["model", "modes"], limit=1) == ["modes"]
