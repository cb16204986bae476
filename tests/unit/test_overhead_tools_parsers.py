"""The real-tools suite's parsers (benches/overhead/tools.py) on output captured from the tools on
this host (tests/fixtures/tools/): host.txt is one whole driver run on the host, the fio O_DIRECT
refusal comes from the QEMU guest's tmpfs, the iperf3 refusal from a client without a server."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from isoinspect.benches.overhead import tools
from isoinspect.runtime.errors import UsageError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tools")
MIB = 1024 * 1024


def _fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.fixture(scope="module")
def host_blocks() -> dict[str, tools.Block]:
    return tools.blocks(_fixture("host.txt"))


def test_the_host_run_parses_to_one_ok_figure_per_test_in_order():
    figures = tools.parse(_fixture("host.txt"))
    assert [f.test for f in figures] == [t.name for t in tools.TESTS]
    for figure, test in zip(figures, tools.TESTS):
        assert figure.status == "ok", figure
        assert figure.unit == test.unit and figure.reason == ""
        assert figure.ops > 0 and figure.value > 0
        # ns_per_op is the time per unit of work the value counts per second: lower is better
        assert figure.ns_per_op * figure.value == pytest.approx(1e9, rel=1e-9)


def test_blocks_carry_exit_codes_and_the_directory_fstype(host_blocks):
    assert set(host_blocks) == {t.name for t in tools.TESTS}
    assert all(b.rc == 0 and b.fstype == "ext2/ext3" for b in host_blocks.values())


@pytest.mark.parametrize("name", ["sysbench_cpu", "sysbench_threads"])
def test_sysbench_events_are_total_events_over_total_time(host_blocks, name):
    text = host_blocks[name].text
    seconds = float(re.search(r"total time:\s+([0-9.]+)s", text).group(1))
    events = int(re.search(r"total number of events:\s+(\d+)", text).group(1))
    figure = tools.parse_sysbench_events(host_blocks[name])
    assert (figure.ops, figure.unit) == (events, "events/s")
    assert figure.value == pytest.approx(events / seconds)
    if name == "sysbench_cpu":  # sysbench's own rounded rate agrees
        reported = float(re.search(r"events per second:\s+([0-9.]+)", text).group(1))
        assert figure.value == pytest.approx(reported, rel=0.01)


def test_sysbench_memory_is_mib_per_second(host_blocks):
    block = host_blocks["sysbench_memory"]
    reported = float(re.search(r"\(([0-9.]+) MiB/sec\)", block.text).group(1))
    figure = tools.parse_sysbench_memory(block)
    assert figure.unit == "MiB/s" and figure.value == pytest.approx(reported, rel=0.01)
    assert figure.ns_per_op == pytest.approx(1e9 / reported, rel=0.01)  # ns per MiB


@pytest.mark.parametrize("name,direction", [("fio_write", "write"), ("fio_read", "read"),
                                            ("fio_direct_write", "write")])
def test_fio_bandwidth_matches_fios_own_bw_bytes(host_blocks, name, direction):
    stats = json.loads(host_blocks[name].text)["jobs"][0][direction]
    figure = tools.BY_NAME[name].parse(host_blocks[name])
    assert figure.unit == "MiB/s"
    assert figure.value == pytest.approx(stats["bw_bytes"] / MIB, rel=0.002)
    assert figure.ops == round(stats["io_bytes"] / MIB)


def test_fio_fsync_write_is_writes_per_second(host_blocks):
    job = json.loads(host_blocks["fio_fsync_write"].text)["jobs"][0]
    assert job["sync"]["total_ios"] > 0  # every write was followed by an fsync
    figure = tools.parse_fio_fsync_write(host_blocks["fio_fsync_write"])
    assert figure.unit == "IOPS" and figure.ops == job["write"]["total_ios"]
    assert figure.value == pytest.approx(job["write"]["iops"], rel=0.002)


def test_fio_o_direct_refused_is_unsupported_with_the_fstype_not_an_error():
    text = _fixture("vm_fio_direct_write.txt")
    block = tools.blocks(text)["fio_direct_write"]
    assert block.rc == 1 and "does not support direct" in block.text
    [figure] = tools.parse(text, [tools.BY_NAME["fio_direct_write"]])
    assert (figure.status, figure.reason) == ("unsupported", "o_direct_not_supported_by_tmpfs")
    assert figure.ops == 0 and figure.value is None and figure.ns_per_op is None


def test_iperf3_stream_is_received_bytes_over_seconds(host_blocks):
    received = json.loads(host_blocks["iperf3_tcp"].text)["end"]["sum_received"]
    figure = tools.parse_iperf3_tcp(host_blocks["iperf3_tcp"])
    assert figure.unit == "MiB/s"
    assert figure.value == pytest.approx(received["bits_per_second"] / 8 / MIB, rel=1e-6)


def test_iperf3_that_could_not_connect_is_an_error_even_with_exit_code_0():
    block = tools.Block("iperf3_tcp", 0, _fixture("iperf3_refused.json"))
    figure = tools.parse_block(tools.BY_NAME["iperf3_tcp"], block)
    assert figure.status == "error"
    assert figure.reason == "iperf3_unable_to_connect_to_server_connection_refused"


def test_a_missing_tool_is_an_error_named_after_it():
    shell = subprocess.run(["sh", "-c", "isoinspect-no-such-tool --version 2>&1"],
                           capture_output=True, text=True)
    block = tools.Block("fio_read", shell.returncode, shell.stdout)
    figure = tools.parse_block(tools.BY_NAME["fio_read"], block)
    assert (figure.status, figure.reason) == ("error", "fio_not_found")


@pytest.mark.parametrize("name", [t.name for t in tools.TESTS])
def test_nonsense_output_is_an_error_never_a_zero(name):
    figure = tools.parse_block(tools.BY_NAME[name], tools.Block(name, 0, "Killed\n"))
    assert figure.status == "error" and figure.reason and " " not in figure.reason


def test_a_run_cut_short_leaves_the_unfinished_tests_as_errors():
    text = _fixture("host.txt")
    cut = text[:text.index("@@T-END fio_read")]  # the target died during fio_read
    figures = {f.test: f for f in tools.parse(cut)}
    assert [figures[n].status for n in ("sysbench_cpu", "fio_write")] == ["ok", "ok"]
    for name in ("fio_read", "fio_fsync_write", "fio_direct_write", "iperf3_tcp"):
        assert (figures[name].status, figures[name].reason) == ("error", "did_not_finish")


def test_the_driver_is_valid_posix_sh_with_each_test_between_markers(tmp_path):
    params = tools.RunParams(directory=str(tmp_path / "a dir; $(x)"), seconds=2, port=31234)
    argv = tools.command(params=params)
    assert argv[:2] == ["sh", "-c"]
    assert subprocess.run(["sh", "-n", "-c", argv[2]]).returncode == 0
    for test in tools.TESTS:
        assert f"@@T-BEGIN %s\\n' {test.name}" in argv[2]
    assert "'" + str(tmp_path / "a dir; $(x)") + "'" in argv[2]  # quoted, never expanded
    assert "--runtime=2" in argv[2] and "--time=2" in argv[2] and "-p 31234 -t 2" in argv[2]


def test_select_keeps_suite_order_and_refuses_unknown_names():
    assert [t.name for t in tools.select(["iperf3_tcp", "sysbench_cpu"])] == \
        ["sysbench_cpu", "iperf3_tcp"]
    assert tools.select(None) == list(tools.TESTS)
    with pytest.raises(UsageError, match="unknown tool test"):
        tools.select(["fio_nope"])


def test_names_are_tool_prefixed_and_the_image_has_every_tool():
    from isoinspect.runtime.image_debian import PLAIN, WITH_TOOLS

    assert all(t.name.startswith(t.tool + "_") for t in tools.TESTS)
    assert set(tools.TOOLS) <= set(WITH_TOOLS.include)
    assert PLAIN.include == ("python3-minimal",) and PLAIN.tar_name != WITH_TOOLS.tar_name


def test_with_tools_alone_is_a_usage_error():
    import sys

    cli = os.path.join(os.path.dirname(sys.executable), "isoinspect")
    run = subprocess.run([cli, "images", "--with-tools"], capture_output=True, text=True)
    assert run.returncode == 125 and "--with-tools needs --ensure-debian" in run.stderr


# ---- as a bench overhead suite (--suite tools|all) -------------------------------------------

def test_tools_suite_runs_the_workloads_cpu_control_first_then_the_tools_in_the_tools_image():
    from isoinspect.benches.overhead.suite import make_suite

    suite = make_suite("tools")
    assert suite.name == "tools" and suite.base.ref == "debian:bookworm-tools"
    assert suite.tests() == ["cpu"] + [t.name for t in tools.TESTS]
    argv = suite.argv(["cpu", "iperf3_tcp", "sysbench_cpu"], 200, "/w/isoinspect-workload")
    assert argv[:2] == ["sh", "-c"]
    first, rest = argv[2].split("\n", 1)
    assert first == "/w/isoinspect-workload -d /tmp -t 1000 cpu"  # as long as each tool
    assert rest.index("@@T-BEGIN %s\\n' sysbench_cpu") < rest.index("' iperf3_tcp")
    assert "fio --name" not in rest and "--time=1 " in rest  # 200 ms -> a whole second
    assert subprocess.run(["sh", "-n", "-c", argv[2]]).returncode == 0


def test_all_runs_every_workload_test_and_own_stays_the_busybox_workload():
    from isoinspect.benches.overhead import program
    from isoinspect.benches.overhead.suite import make_suite

    every = make_suite("all")
    assert every.tests() == list(program.TEST_NAMES) + [t.name for t in tools.TESTS]
    assert "-t 2000 cpu getppid" in every.argv(["cpu", "getppid", "fio_read"], 2000, "/b")[2]
    assert "--runtime=2 " in every.argv(["cpu", "fio_read"], 2000, "/b")[2]
    own = make_suite("own")
    assert own.name == "workload" and own.base is None
    with pytest.raises(UsageError, match="unknown suite 'toolz'"):
        make_suite("toolz")


def test_the_suite_reads_workload_lines_and_tool_blocks_from_one_output():
    from isoinspect.benches.overhead.suite import RunError, make_suite

    suite = make_suite("tools")
    text = ("@@W test=cpu status=ok ops=40 ns_per_op=2400000.0 value=2.4 unit=ms\n"
            "@@W-END tests=1 ok=1\n" + _fixture("host.txt"))
    figures = suite.figures(text, ["cpu", "fio_write", "iperf3_tcp"])
    assert list(figures) == ["cpu", "fio_write", "iperf3_tcp"]
    assert all(f.status == "ok" for f in figures.values())
    assert figures["cpu"].unit == "ms" and figures["fio_write"].unit == "MiB/s"
    with pytest.raises(RunError, match="no @@T-DONE"):
        suite.figures(text[:text.index("@@T-DONE")], ["cpu"])


@pytest.mark.parametrize("duration_ms,seconds", [(1, 1), (50, 1), (200, 1), (1499, 1),
                                                 (1500, 2), (3000, 3)])
def test_tools_take_whole_seconds(duration_ms, seconds):
    assert tools.seconds_for(duration_ms) == seconds


def test_an_fstype_stat_does_not_know_still_names_the_unsupported_reason():
    text = _fixture("vm_fio_direct_write.txt").replace("fstype=tmpfs", "fstype=UNKNOWN (0x1021994)")
    [figure] = tools.parse(text, [tools.BY_NAME["fio_direct_write"]])
    assert figure.reason == "o_direct_not_supported_by_unknown_0x1021994"


def test_the_driver_works_in_a_private_directory_it_removes_and_says_when_it_cannot(tmp_path):
    ran = subprocess.run(tools.command([], tools.RunParams(str(tmp_path), 1, 31234)),
                         capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.endswith("@@T-DONE\n")
    assert f"@@T-INFO dir={tmp_path}/isoinspect-tools." in ran.stdout
    assert list(tmp_path.iterdir()) == []
    missing = tmp_path / "missing"
    failed = subprocess.run(tools.command(params=tools.RunParams(str(missing), 1, 31234)),
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "@@T-FAIL cannot make a directory" in failed.stdout
    assert {f.reason for f in tools.parse(failed.stdout)} == {"did_not_finish"}
