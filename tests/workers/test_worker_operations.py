"""The operator's worker commands that need no running worker: one worker per GPU, and
the drain command's answers when a name is wrong, and when --wait calls workers idle
(tests/e2e/test_operations.py drains real ones)."""

from __future__ import annotations

from workers import drain, gpu_workers


def test_one_worker_per_gpu_each_seeing_only_its_own():
    commands = [gpu_workers.worker_command(i, "gpu") for i in range(2)]
    for index, command in enumerate(commands):
        assert command[command.index("-Q") + 1] == "gpu" and command[command.index("--concurrency") + 1] == "1"
        assert command[command.index("-n") + 1] == f"gpu{index}@%h"
        assert gpu_workers.worker_env(index)["CUDA_VISIBLE_DEVICES"] == str(index)


def test_without_a_gpu_the_gpu_workers_refuse_to_start(capsys):
    assert gpu_workers.gpu_count() == 0  # no GPU on the machines this suite runs on
    assert gpu_workers.main(["--queue", "gpu"]) == 1
    assert "no GPU is visible" in capsys.readouterr().err


def test_draining_a_worker_that_is_not_alive_names_the_live_ones(redis_url, worker, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert drain.main(["drain", "--worker", "nobody@nowhere"]) == 1
    err = capsys.readouterr().err
    assert "no live worker named nobody@nowhere" in err and "test-cpu@" in err


def test_drain_wait_counts_a_worker_idle_only_once_it_answers_that_it_runs_nothing():
    assert drain.all_idle({"cpu@a": 0, "cpu@b": 0})
    assert not drain.all_idle({"cpu@a": 0, "cpu@b": 1})
    assert not drain.all_idle({"cpu@a": 0, "cpu@b": None})  # no answer: it may be running a job
    assert drain.busy({"cpu@a": 0, "cpu@b": None, "cpu@c": 1, "cpu@d": 2}) == \
        "cpu@b (no answer), cpu@c (1 job), cpu@d (2 jobs)"
