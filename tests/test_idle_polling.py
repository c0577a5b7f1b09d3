"""poll_idle_cpus(): the PM QoS request it holds, and --poll-idle's refusal where the request cannot be made."""

import struct

import pytest

import minigrad_q as mq
from minigrad_q import idle_polling
from minigrad_q.cli import main


def test_the_request_is_a_latency_of_zero_held_open_for_the_block(tmp_path):
    target = tmp_path / "cpu_dma_latency"
    target.write_bytes(b"")
    with mq.poll_idle_cpus(str(target)) as request:
        assert not request.closed
        assert struct.unpack("=i", target.read_bytes()) == (0,)
    assert request.closed  # closing the file is what ends the request


def test_the_request_ends_when_the_block_raises(tmp_path):
    target = tmp_path / "cpu_dma_latency"
    with pytest.raises(KeyError), mq.poll_idle_cpus(str(target)) as request:
        raise KeyError("inside")
    assert request.closed


def test_a_request_that_cannot_be_made_names_the_file_and_why(tmp_path):
    missing = tmp_path / "no" / "cpu_dma_latency"
    with pytest.raises(RuntimeError, match=r"poll_idle_cpus: cannot open .*no/cpu_dma_latency .*No such file"):
        with mq.poll_idle_cpus(str(missing)):
            pytest.fail("the block must not run")


@pytest.mark.parametrize("command", [["bench", "--lenet"], ["train", "--epochs", "1"]])
def test_poll_idle_is_refused_before_any_work_where_the_request_cannot_be_made(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(idle_polling, "PM_QOS_FILE", str(tmp_path / "absent" / "cpu_dma_latency"))
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--poll-idle"]) == 2
    out, err = capsys.readouterr()
    assert f"{command[0]}: poll_idle_cpus: cannot open" in err and len(err.strip().splitlines()) == 1
    assert out == ""  # nothing measured or trained first


def fake_idle_files(tmp_path, monkeypatch, driver=None, poll=None):
    for name, value in (("IDLE_DRIVER_FILE", driver), ("HALT_POLL_FILE", poll)):
        path = tmp_path / name
        if value is not None:
            path.write_text(value + "\n")
        monkeypatch.setattr(idle_polling, name, str(path))


def test_idle_report_says_when_idle_cpus_halt_at_once(tmp_path, monkeypatch):
    fake_idle_files(tmp_path, monkeypatch, driver="haltpoll", poll="0")
    report = idle_polling.idle_report()
    assert report.startswith("haltpoll driver, guest_halt_poll_ns 0 (idle CPUs halt at once") and "--poll-idle" in report


@pytest.mark.parametrize(("driver", "poll", "expected"), [
    ("haltpoll", "200000", "haltpoll driver, guest_halt_poll_ns 200000"),
    ("intel_idle", None, "intel_idle driver"),
    (None, None, "not shown by this system"),
])
def test_idle_report_without_the_hint(driver, poll, expected, tmp_path, monkeypatch):
    fake_idle_files(tmp_path, monkeypatch, driver=driver, poll=poll)
    assert idle_polling.idle_report() == expected


def test_info_shows_the_idle_report(tmp_path, monkeypatch, capsys):
    fake_idle_files(tmp_path, monkeypatch, driver="intel_idle")
    assert main(["info"]) == 0
    assert "idle CPUs   intel_idle driver" in capsys.readouterr().out.splitlines()
