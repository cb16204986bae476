"""deploy/kubernetes: the DaemonSet that runs the main job on every node is valid YAML with what
the README says it has (no cluster here to apply it to)."""

from __future__ import annotations

import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = os.path.join(ROOT, "deploy", "kubernetes", "isoinspect-compare.yaml")


def test_daemonset_runs_compare_with_json_per_node_privileged():
    with open(MANIFEST) as handle:
        docs = list(yaml.safe_load_all(handle))
    assert [d["kind"] for d in docs] == ["Namespace", "DaemonSet"]
    daemonset = docs[1]
    assert daemonset["apiVersion"] == "apps/v1"
    assert daemonset["metadata"]["namespace"] == docs[0]["metadata"]["name"]
    pod = daemonset["spec"]["template"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["hostPID"] is True
    (container,) = spec["containers"]
    assert container["securityContext"]["privileged"] is True
    script = " ".join(container["command"] + container["args"])
    assert "isoinspect compare --quick --json \"/results/$NODE_NAME.json\"" in script
    for name in ("NODE_NAME", "ISOINSPECT_NODE_NAME"):   # the file names; the records' host
        assert any(e["name"] == name and e["valueFrom"]["fieldRef"]["fieldPath"] ==
                   "spec.nodeName" for e in container["env"]), name
    volumes = {v["name"] for v in spec["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} == volumes
    assert "/results" in {m["mountPath"] for m in container["volumeMounts"]}
