"""What `scones import` reads from a project: ARNs, sources, events.

Whether AWS accepts a definition is the emulator's answer: tests/emulator/test_fidelity.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scones import byo

PROJECT = Path(__file__).resolve().parent / "course_project"


def _task(resource: object, **extra) -> dict:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": True,
                                             **extra}}}  # fmt: skip


# ------------------------------ ARNs in any form ------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("arn:aws:lambda:us-east-1:123456789012:function:classify:$LATEST",
         ("classify", "123456789012", "us-east-1", "$LATEST")),
        ("arn:aws:lambda:eu-west-1:210987654321:function:classify",
         ("classify", "210987654321", "eu-west-1", None)),
        ("arn:aws:lambda:us-west-2:123456789012:function:classify:prod",
         ("classify", "123456789012", "us-west-2", "prod")),
        ("arn:aws:lambda:us-east-1:123456789012:function:classify:7",
         ("classify", "123456789012", "us-east-1", "7")),
        ("classify", ("classify", None, None, None)),
        ("classify:$LATEST", ("classify", None, None, "$LATEST")),
        ("123456789012:function:classify:prod", ("classify", "123456789012", None, "prod")),
    ],
)  # fmt: skip
def test_function_name_forms_lambda_accepts(value, expected):
    ref = byo.parse_function_name(value, "/x")
    assert (ref.name, ref.account, ref.region, ref.qualifier) == expected


def test_function_refs_of_the_exported_definition():
    definition = json.loads((PROJECT / "statemachine.json").read_text())
    refs, dynamic = byo.function_refs(definition)
    assert [(r.name, r.account, r.region, r.qualifier) for r in refs] == [
        ("serializeImageData", "123456789012", "us-east-1", "$LATEST"),
        ("classifyImage", "123456789012", "us-east-1", "$LATEST"),
        ("filterInferences", "123456789012", "us-east-1", "$LATEST"),
    ]
    assert dynamic == []
    text = (PROJECT / "statemachine.json").read_text()
    assert byo.account_and_region(text, refs) == ("123456789012", "us-east-1")


def test_function_refs_inside_parallel_branches_and_jsonata_arguments():
    for variant in ("parallel.json", "jsonata.json"):
        definition = json.loads((PROJECT / "variants" / variant).read_text())
        refs, _ = byo.function_refs(definition)
        assert sorted(r.name for r in refs) == ["classifyImage", "filterInferences",
                                                "serializeImageData"]  # fmt: skip


def test_function_chosen_at_run_time_is_reported():
    definition = _task("arn:aws:states:::lambda:invoke",
                       Parameters={"FunctionName.$": "$.fn", "Payload.$": "$"})  # fmt: skip
    refs, dynamic = byo.function_refs(definition)
    assert refs == [] and dynamic == ["/States/T/Parameters/FunctionName.$"]


def test_account_and_region_from_other_arns_when_no_lambda_names_them():
    text = '{"TopicArn": "arn:aws:sns:eu-central-1:111122223333:t"}'
    assert byo.account_and_region(text, []) == ("111122223333", "eu-central-1")


# ------------------------------ what is not a definition at all -------------------------


def test_definition_that_is_not_json_is_rejected_before_anything_else():
    with pytest.raises(byo.DefinitionRejected, match="INVALID_JSON_DESCRIPTION"):
        byo.load_definition('{"StartAt": ')


# ------------------------------ sources ------------------------------


def test_functions_map_to_the_files_named_after_them():
    files = byo.python_files([PROJECT / "lambdas"])
    mapped = byo.map_functions(
        ["serializeImageData", "classifyImage", "filterInferences"], files, {}, {}, "python3.12"
    )
    assert {n: (s.path.name, s.handler) for n, s in mapped.items()} == {
        "serializeImageData": ("serializeImageData.py", "serializeImageData.lambda_handler"),
        "classifyImage": ("classifyImage.py", "classifyImage.lambda_handler"),
        "filterInferences": ("filterInferences.py", "filterInferences.lambda_handler"),
    }


def test_explicit_handler_in_awss_module_dot_function_form(tmp_path):
    source = tmp_path / "serialize.py"
    source.write_text("def lambda_handler(event, context):\n    return event\n")
    mapped = byo.map_functions(
        ["serializeImageData"], [source],
        {"serializeImageData": f"{source}:lambda_function.lambda_handler"}, {}, "python3.9",
    )  # fmt: skip
    assert mapped["serializeImageData"].handler == "lambda_function.lambda_handler"
    assert mapped["serializeImageData"].runtime == "python3.9"


def test_console_export_folder_layout(tmp_path):
    (tmp_path / "classifyImage").mkdir()
    (tmp_path / "classifyImage" / "lambda_function.py").write_text(
        "def lambda_handler(event, context):\n    return event\n"
    )
    mapped = byo.map_functions(
        ["classifyImage"], byo.python_files([tmp_path]), {}, {}, "python3.12"
    )
    assert mapped["classifyImage"].handler == "lambda_function.lambda_handler"


def test_unmapped_function_names_the_flag_to_use():
    with pytest.raises(byo.UnmappedFunction, match="--function NAME=FILE"):
        byo.map_functions(["somethingElse"], byo.python_files([PROJECT / "lambdas"]), {}, {}, "x")


def test_endpoint_names_found_in_the_sources(tmp_path):
    uses = byo.endpoint_names(PROJECT / "lambdas" / "classifyImage.py")
    assert [(u.name, u.line, u.how) for u in uses] == [
        ("image-classification-2021-11-20-23-59-22-151", 6, "assignment")
    ]
    inline = tmp_path / "inline.py"
    inline.write_text(
        "import os, boto3\n"
        "NAME = os.environ.get('ENDPOINT_NAME', 'from-env-default')\n"
        "def handler(event, context):\n"
        "    rt = boto3.client('sagemaker-runtime')\n"
        "    return rt.invoke_endpoint(EndpointName='literal-endpoint', Body=b'')\n"
    )
    assert sorted(u.name for u in byo.endpoint_names(inline)) == [
        "from-env-default", "literal-endpoint"
    ]  # fmt: skip


def test_modules_the_runtime_lacks_are_reported(tmp_path):
    source = tmp_path / "classify.py"
    source.write_text("import json, boto3\nimport sagemaker\nfrom helpers import x\n")
    assert byo.missing_modules(source, {"helpers"}) == ["sagemaker"]


# ------------------------------ events ------------------------------


def test_buckets_and_keys_in_events():
    event = json.loads((PROJECT / "events" / "test_event.json").read_text())
    assert byo.object_refs(event) == [
        byo.ObjectRef("sagemaker-us-east-1-123456789012", "test/bicycle_s_000513.png")
    ]
    notification = {"detail": {"bucket": {"name": "b"}, "object": {"key": "data/test/x.png"}},
                    "uri": "s3://other/train/y.png"}  # fmt: skip
    assert set(byo.object_refs(notification)) == {
        byo.ObjectRef("b", "data/test/x.png"), byo.ObjectRef("other", "train/y.png")
    }  # fmt: skip


@pytest.mark.parametrize(
    ("key", "prefix"),
    [("test/bicycle_s_000513.png", ""), ("data/test/x.png", "data/"),
     ("a/b/train/y.jpg", "a/b/"), ("uploads/photo.png", None), ("test/readme.txt", None)],
)  # fmt: skip
def test_dataset_prefix_of_a_key(key, prefix):
    assert byo.dataset_prefix(key) == prefix


# ------------------------------ console-like output ------------------------------


def test_long_base64_is_shortened_even_inside_a_json_string_body():
    image = "iVBORw0KGgo" + "A" * 3000
    body = json.dumps({"image_data": image, "s3_key": "test/x.png"})
    shown = byo.short_json(json.dumps({"statusCode": 200, "body": body}))
    assert image not in shown
    assert "iVBORw0KGgoAAAAAAAAAAAAA…(3,011 chars)" in shown
    assert "test/x.png" in shown
