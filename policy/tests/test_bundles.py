"""Loading policy bundles: directories and archives, digests, and every way a bundle is refused.

Pure Python, no database: every bundle is written under tmp_path.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from policy.engine import (
    BundleError,
    load_bundle,
)
from policy.engine import bundle as bundle_module
from policy.tests.engine_helpers import (
    BUDGET_TEST_REGO,
    budget_dir,
    make_targz,
    write_bundle,
)

# --- loading -------------------------------------------------------------------------


def test_load_directory_reads_manifest_modules_and_nested_data(tmp_path: Path) -> None:
    bundle = load_bundle(budget_dir(tmp_path))

    assert (bundle.name, bundle.revision, bundle.roots) == ("budget", "r1", ("mc/budget",))
    assert list(bundle.modules) == ["policy.rego"]  # *_test.rego is not evaluated
    assert bundle.data == {"mc": {"budget": {"defaults": {"max_cost_per_run_usd": 1.5}}}}
    assert bundle.digest.startswith("sha256:") and len(bundle.digest) == 71


def test_directory_and_targz_of_the_same_content_have_the_same_digest(tmp_path: Path) -> None:
    directory = budget_dir(tmp_path)
    archive = make_targz(directory, tmp_path / "budget.tar.gz")

    from_dir, from_tar = load_bundle(directory), load_bundle(archive)

    assert from_tar.name == "budget"
    assert from_tar.digest == from_dir.digest
    assert (from_tar.modules, from_tar.data, from_tar.revision) == (from_dir.modules, from_dir.data, from_dir.revision)


def test_digest_changes_with_any_file_including_tests(tmp_path: Path) -> None:
    before = load_bundle(budget_dir(tmp_path)).digest
    (tmp_path / "budget" / "policy_test.rego").write_text(BUDGET_TEST_REGO + "\n# changed\n")

    assert load_bundle(tmp_path / "budget").digest != before


def test_data_json_files_merge_at_their_directory_paths(tmp_path: Path) -> None:
    directory = write_bundle(
        tmp_path / "quotas",
        {
            "policy.rego": "package mc.quotas\n\nimport rego.v1\n\ndeny := set()\n\nwarn := set()\n",
            "data.json": json.dumps({"mc": {"quotas": {"a": 1}}}),
            "mc/quotas/data.json": json.dumps({"b": 2}),
            "mc/quotas/limits/data.json": json.dumps({"large": 5}),
        },
    )

    assert load_bundle(directory).data == {"mc": {"quotas": {"a": 1, "b": 2, "limits": {"large": 5}}}}


@pytest.mark.parametrize(
    ("manifest", "fragment", "line"),
    [
        (None, "no .manifest", 0),
        ('{\n  "revision": "r1",\n  roots: []\n}', "invalid JSON", 3),
        ("[1, 2]", "JSON object", 0),
        ('{"revision": 7}', "revision must be a string", 0),
        ('{"revision": "r", "roots": "mc/x"}', "roots must be a list", 0),
    ],
)
def test_manifest_errors(tmp_path: Path, manifest: str | None, fragment: str, line: int) -> None:
    directory = write_bundle(tmp_path / "x", {"policy.rego": "package mc.x\n\ndeny := set()\n"})
    if manifest is None:
        (directory / ".manifest").unlink()
    else:
        (directory / ".manifest").write_text(manifest)

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    assert fragment in caught.value.message
    assert caught.value.file == ".manifest"
    assert caught.value.line == line


def test_rego_syntax_error_reports_file_line_and_column(tmp_path: Path) -> None:
    source = "package mc.x\n\n# h\u00e9llo \u2603\ndeny contains d if {\n  d := [1,\n}\n"
    directory = write_bundle(tmp_path / "x", {"ok.rego": "package mc.x\n\nwarn := set()\n", "sub/bad.rego": source})

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    error = caught.value
    assert (error.file, error.line, error.column) == ("sub/bad.rego", 5, 8)
    assert "unclosed" in error.message
    assert str(error).startswith("sub/bad.rego:5:8: ")


def test_a_module_without_package_is_refused(tmp_path: Path) -> None:
    directory = write_bundle(tmp_path / "x", {"a.rego": "# comment\n\ndeny := 1\n"})

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    assert (caught.value.file, caught.value.line, caught.value.message) == (
        "a.rego",
        3,
        "a module must start with a package declaration",
    )


def test_a_bundle_without_its_pack_package_is_refused(tmp_path: Path) -> None:
    directory = write_bundle(
        tmp_path / "x", {"a.rego": "package mc.other\n\ndeny := set()\n"}, {"revision": "r", "roots": ["mc"]}
    )

    with pytest.raises(BundleError, match=r"no module declares package mc\.x"):
        load_bundle(directory)


def test_a_package_outside_the_roots_is_refused(tmp_path: Path) -> None:
    directory = write_bundle(
        tmp_path / "x", {"a.rego": "package mc.x\n\ndeny := set()\n", "b.rego": "package other\n\ny := 1\n"}
    )

    with pytest.raises(BundleError, match="outside the manifest roots") as caught:
        load_bundle(directory)

    assert caught.value.file == "b.rego"


@pytest.mark.parametrize(
    ("files", "fragment", "line"),
    [
        ({"mc/x/data.json": '{"a": 1,\n "b": }'}, "invalid JSON", 2),
        ({"data.json": "[1]"}, "must hold a JSON object", 0),
        ({"data.json": '{"other": {"a": 1}}'}, "outside the manifest roots", 0),
        ({"data.json": '{"mc": {"x": {"a": 1}}}', "mc/x/data.json": '{"a": 2}'}, "data conflicts at /mc/x/a", 0),
    ],
)
def test_bad_data_json_is_refused(tmp_path: Path, files: dict[str, str], fragment: str, line: int) -> None:
    directory = write_bundle(tmp_path / "x", {"a.rego": "package mc.x\n\ndeny := set()\n", **files})

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    assert fragment in caught.value.message
    assert caught.value.file.endswith("data.json")
    assert caught.value.line == line


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, content: bytes = b"") -> Path:
    archive = tmp_path / "x.tar.gz"
    manifest = json.dumps({"revision": "r", "roots": ["mc/x"]}).encode()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(".manifest")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        tar.addfile(member, io.BytesIO(content) if member.isfile() else None)
    return archive


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        (_member("/etc/evil.rego", size=3), "absolute paths"),
        (_member("../evil.rego", size=3), "'..'"),
        (_member("a/../../evil.rego", size=3), "'..'"),
        (_member("evil.rego", tarfile.SYMTYPE, linkname="/etc/passwd"), "links"),
        (_member("evil.rego", tarfile.LNKTYPE, linkname=".manifest"), "links"),
        (_member("dev.rego", tarfile.CHRTYPE), "regular files"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path: Path, member: tarfile.TarInfo, fragment: str) -> None:
    archive = _tar_with(tmp_path, member, b"abc")

    with pytest.raises(BundleError, match=fragment):
        load_bundle(archive)


def test_symlinks_in_a_bundle_directory_are_refused(tmp_path: Path) -> None:
    directory = write_bundle(tmp_path / "x", {"a.rego": "package mc.x\n\ndeny := set()\n"})
    (directory / "b.rego").symlink_to(tmp_path / "elsewhere.rego")

    with pytest.raises(BundleError, match="symbolic links"):
        load_bundle(directory)


def test_oversize_bundles_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = budget_dir(tmp_path)
    archive = make_targz(directory, tmp_path / "budget.tar.gz")
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 500)

    for path in (directory, archive):
        with pytest.raises(BundleError, match="larger than 500 bytes"):
            load_bundle(path)


def test_a_corrupt_archive_is_a_bundle_error(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")

    with pytest.raises(BundleError, match=r"not a readable \.tar\.gz"):
        load_bundle(archive)
