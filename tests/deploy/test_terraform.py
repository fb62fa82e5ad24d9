"""deploy/terraform/mc: formatted, and consistent with the chart it installs.

``terraform validate`` needs the helm and kubernetes providers, which ``terraform init``
downloads from the Terraform registry: no machine of MC's can reach it, so only what runs
offline runs here (deploy/README.md, "Terraform").
"""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.deploy.conftest import CHART, DEPLOY, run

MODULE = DEPLOY / "terraform" / "mc"


@pytest.fixture(scope="module")
def terraform() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.fail("terraform is not installed (the machines have terraform 1.11: see deploy/README.md)")
    return found


def _blocks(kind: str, text: str) -> dict[str, str]:
    """``{name: body}`` of each top-level ``kind "name" {...}`` block (closed by a ``}`` at column 0)."""
    return dict(re.findall(rf'^{kind} "([^"]+)" \{{\n(.*?)^\}}', text, flags=re.MULTILINE | re.DOTALL))


def test_terraform_fmt_check(terraform: str) -> None:
    result = run([terraform, "fmt", "-check", "-recursive", "-diff", str(MODULE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_variable_and_output_is_described() -> None:
    variables = _blocks("variable", (MODULE / "variables.tf").read_text())
    outputs = _blocks("output", (MODULE / "outputs.tf").read_text())
    assert {"name", "region", "tags", "namespace", "database_url", "broker_url", "signing_key_pem"} <= set(variables)
    for name, body in {**variables, **outputs}.items():
        assert re.search(r'^\s+description\s+= "\S', body, flags=re.MULTILINE), f"{name} has no description"
    for name in ("name", "region", "tags", "image_tag", "signing_key_pem", "database_url", "broker_url"):
        assert "validation {" in variables[name], f"variable {name} is not validated"
    for name in ("secret_key", "database_url", "broker_url", "signing_key_pem", "canary_webhook_secret"):
        assert re.search(r"sensitive\s+= true", variables[name]), f"variable {name} is not sensitive"


def test_the_module_writes_every_key_the_chart_reads() -> None:
    chart_keys = set(yaml.safe_load((CHART / "values.yaml").read_text())["secrets"]["keys"].values())
    main = (MODULE / "main.tf").read_text()
    secret_data = re.search(r"secret_data = \{(.*?)\n  \}", main, flags=re.DOTALL)
    assert secret_data is not None
    assert set(re.findall(r'"([^"]+)"\s+=', secret_data.group(1))) == chart_keys


def test_the_example_uses_the_sprint_plan_shape() -> None:
    example = (MODULE / "examples" / "basic" / "main.tf").read_text()
    module = _blocks("module", example)["mc"]
    assert 'source = "../.."' in module
    assert re.search(r"tags = \{\s+service = \"mc\"\s+owner\s+= var.owner\s+\}", module)
