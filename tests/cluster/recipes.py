"""The small recipe the cluster tests run: two tiny models, two modes (fp32
and dynamic), two devices (`laptop`, with the Keras baseline, and
`fake-pi`, runtime only as a Pi would be)."""

from tests.tiny import TINY_MIT_64, TINY_VITDET

DEVICES = {"laptop": True, "fake-pi": False}  # name -> Keras baseline rows


def _toml_value(value):
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def _model(preset, name, size, config):
    inline = ", ".join(f"{k} = {_toml_value(v)}" for k, v in config.items())
    return (
        f'[[model]]\npreset = "{preset}"\nname = "{name}"\n'
        f"random_weights = true\nimage_size = [{size}, {size}]\n"
        f"config = {{ {inline} }}\n"
    )


def write_recipe(folder, devices=DEVICES, name="cluster.toml"):
    text = '[export]\nmodes = ["dynamic"]\nout = "exported"\n'
    text += _model("mit_b0", "mit_tiny", 64, TINY_MIT_64)
    text += _model("sam_vit_base", "vitdet_tiny", 32, TINY_VITDET)
    for device, keras in devices.items():
        text += (
            f'[[device]]\nname = "{device}"\nthreads = [1]\n'
            f"keras = {str(keras).lower()}\n"
        )
    recipe = folder / name
    recipe.write_text(text)
    return recipe
