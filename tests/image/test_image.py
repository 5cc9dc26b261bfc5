"""The built image itself: what the rendered manifests promise about it holds (user, data
directory, port, commands), it runs on a read-only root, and it carries no build tools."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.image.engine import ROOT, Container, Image
from tests.image.pods import environment, notar_workloads, pod_spec, runs_notar
from tests.k8s.conftest import Rendered

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make", "ld")


def test_the_build_is_recorded_with_its_size(image: Image) -> None:
    recorded = json.loads((ROOT / "build" / "image.json").read_text())
    assert recorded["id"] == image.id and recorded["size_bytes"] == image.layer_bytes
    assert f"{image.layer_bytes / 1e6:.1f} MB" in image.build_output


def test_pods_run_as_the_images_user(image: Image, container: Container, manifests: dict[str, Rendered]
                                     ) -> None:
    uid, gid = image.user
    assert uid != 0 and gid != 0
    passwd = (container.rootfs / "etc" / "passwd").read_text().splitlines()
    assert any(line.split(":")[2:4] == [str(uid), str(gid)] for line in passwd), "the user has a name"
    for r in manifests.values():
        for role, w in notar_workloads(r).items():
            ctx = pod_spec(w)["securityContext"]
            assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) == (uid, gid, gid), (r.overlay, role)
            for c in [*pod_spec(w).get("initContainers", []), *pod_spec(w)["containers"]]:
                assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_data_dir_and_port_are_the_images(image: Image, container: Container,
                                          manifests: dict[str, Rendered]) -> None:
    """The manifests' DATA_DIR is the image's, a directory its user owns and can write (so the
    image also runs without a volume); their LISTEN port is the container port and the image's
    EXPOSE."""
    data = image.env["NOTAR_DATA_DIR"]
    st = (container.rootfs / data.lstrip("/")).stat()
    assert stat.S_ISDIR(st.st_mode) and (st.st_uid, st.st_gid) == image.user and st.st_mode & stat.S_IWUSR
    image_port = int(image.env["NOTAR_LISTEN"].rpartition(":")[2])
    assert f"{image_port}/tcp" in image.config["ExposedPorts"]
    secrets = {"notar-s3": {"AWS_ACCESS_KEY_ID": b"x", "AWS_SECRET_ACCESS_KEY": b"x"}}
    for r in manifests.values():
        for role, w in notar_workloads(r).items():
            main = pod_spec(w)["containers"][0]
            env = environment(r, main, secrets)
            assert env["NOTAR_DATA_DIR"] == data, (r.overlay, role)
            assert int(env["NOTAR_LISTEN"].rpartition(":")[2]) == image_port, (r.overlay, role)
            assert [p["containerPort"] for p in main["ports"] if p["name"] == "http"] == [image_port]


def test_every_command_the_manifests_run_exists_in_the_image(image: Image, container: Container,
                                                             manifests: dict[str, Rendered], tmp_path: Path
                                                             ) -> None:
    commands = set()
    for r in manifests.values():
        for w in r.of_kind("Deployment") + r.of_kind("StatefulSet"):
            for c in [*pod_spec(w).get("initContainers", []), *pod_spec(w)["containers"]]:
                if runs_notar(c):
                    commands.add(image.argv(c.get("command"), c.get("args"))[0])
                    hooks = c.get("lifecycle", {}).values()
                    commands |= {h["exec"]["command"][0] for h in hooks if "exec" in h}
    assert {"notar", "sh", "sleep"} <= commands
    for name in sorted(commands):
        assert container.check(["sh", "-c", f'command -v "{name}"'], tmp_path).strip(), name
    assert container.check(["notar", "--version"], tmp_path).startswith("notar ")


def test_no_build_tools_or_caches_in_the_image(image: Image, container: Container, tmp_path: Path) -> None:
    found = container.check(
        ["sh", "-c", "for c in " + " ".join(COMPILERS) + ' pip pip3; do command -v "$c" || true; done'],
        tmp_path, user="0:0")
    assert found.strip() == "", f"build tools on PATH: {found}"
    root = container.rootfs
    assert not list(root.glob("opt/notar/lib/python3*/site-packages/pip")), "pip left in the venv"
    for cache in ("root/.cache", "var/lib/notar/.cache", "src", "tmp/pip-*"):
        assert not list(root.glob(cache)), cache
    assert not list(root.glob("opt/**/*.whl")) and not list(root.glob("usr/include/python3*/Python.h"))


def test_the_root_filesystem_is_read_only_even_for_root(container: Container, tmp_path: Path) -> None:
    """The tests' container mounts the root read-only, as readOnlyRootFilesystem does: a write
    outside the volumes fails (so the serving tests would see one)."""
    log = tmp_path / "write.log"
    proc = container.run(["sh", "-c", "touch /var/lib/notar/probe"], user="0:0", log=log)
    assert proc.popen.wait(timeout=60) != 0 and "Read-only file system" in proc.output()
