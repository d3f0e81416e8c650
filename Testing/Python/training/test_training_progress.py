"""Progress reporters (bar, callback, PROGRESS lines, null) and cancellation plumbing."""

import io
import signal
import threading

import pytest
import torch

from CardiacMotionAtlasLib.training import (
    CallbackProgress,
    CancelToken,
    LineProgress,
    NullProgress,
    ProgressReporter,
    TqdmProgress,
    TrainingCancelled,
    cancel_on_signals,
    make_progress_reporter,
    parse_progress_line,
    run_training,
)


def _train(total, progress, path=None, resume=False, cancel=None):
    weight = torch.nn.Parameter(torch.ones(1))

    def step_fn(step):
        return {"loss": torch.tensor(1.0 / (step + 1))}

    def state_dict_fn():
        return {"model_state": {"w": weight.detach()}}

    def load_state_fn(checkpoint):
        weight.data.copy_(checkpoint.model_state["w"])

    return run_training(step_fn, total_steps=total, checkpoint_path=path, checkpoint_every=2,
                        state_dict_fn=state_dict_fn, load_state_fn=load_state_fn, config={},
                        kind="toy", resume=resume, progress=progress, cancel=cancel, description="fit toy")


def test_every_reporter_satisfies_the_protocol():
    reporters = (
        NullProgress(), TqdmProgress(io.StringIO()), CallbackProgress(lambda f, m: None), LineProgress(io.StringIO())
    )
    for reporter in reporters:
        assert isinstance(reporter, ProgressReporter)


def test_progress_lines_parse_back():
    stream = io.StringIO()
    _train(8, LineProgress(stream, min_interval_s=0))
    lines = stream.getvalue().splitlines()
    parsed = [parse_progress_line(line) for line in lines]
    assert all(item is not None for item in parsed) and all(line.startswith("PROGRESS ") for line in lines)
    fractions = [fraction for fraction, _ in parsed]
    assert fractions == [i / 8 for i in range(9)]
    assert parsed[-1][1] == "fit toy: 8/8 loss=0.125"
    assert parsed[0][1] == "fit toy: 0/8"


def test_parse_progress_line_ignores_other_output():
    assert parse_progress_line("PROGRESS 0.500000 fit: 1/2\n") == (0.5, "fit: 1/2")
    assert parse_progress_line("PROGRESS 1") == (1.0, "")
    assert parse_progress_line("loading data...") is None
    assert parse_progress_line("PROGRESS half way") is None


def test_throttled_lines_still_end_at_one():
    stream = io.StringIO()
    _train(50, LineProgress(stream, min_interval_s=3600))
    fractions = [parse_progress_line(line)[0] for line in stream.getvalue().splitlines()]
    assert fractions == [0.0, 1.0]


def test_messages_stay_on_one_line():
    stream = io.StringIO()
    reporter = LineProgress(stream, min_interval_s=0)
    reporter.start(2, "multi\nline\tdescription")
    reporter.update(2, loss=0.5)
    assert len(stream.getvalue().splitlines()) == 2
    assert parse_progress_line(stream.getvalue().splitlines()[-1]) == (1.0, "multi line description: 2/2 loss=0.5")


def test_callback_fractions_increase_strictly_and_end_at_one(tmp_path):
    calls = []
    _train(10, CallbackProgress(lambda fraction, message: calls.append((fraction, message))), path=tmp_path / "c.pt")
    fractions = [fraction for fraction, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b > a for a, b in zip(fractions, fractions[1:]))
    assert calls[-1][1].startswith("fit toy: 10/10")

    resumed = []
    reporter = CallbackProgress(lambda fraction, message: resumed.append(fraction))
    _train(20, reporter, path=tmp_path / "c.pt", resume=True)
    assert resumed[0] == 0.5 and resumed[-1] == 1.0  # a resumed run starts where the checkpoint is


def test_repeated_updates_are_not_reported_twice():
    calls = []
    reporter = CallbackProgress(lambda fraction, message: calls.append(fraction))
    reporter.start(4)
    for step in (1, 1, 2, 1, 4, 4):
        reporter.update(step)
    assert calls == [0.0, 0.25, 0.5, 1.0]


def test_tqdm_bar_writes_to_its_stream():
    stream = io.StringIO()
    _train(5, TqdmProgress(stream, mininterval=0))
    text = stream.getvalue()
    assert "fit toy" in text and "5/5" in text


def test_make_progress_reporter_modes():
    assert isinstance(make_progress_reporter("none"), NullProgress)
    assert isinstance(make_progress_reporter("lines"), LineProgress)
    assert isinstance(make_progress_reporter("bar"), TqdmProgress)
    assert isinstance(make_progress_reporter("lines", rank=1), NullProgress)
    assert isinstance(make_progress_reporter("none", callback=lambda f, m: None), CallbackProgress)
    assert isinstance(make_progress_reporter("auto"), (NullProgress, TqdmProgress))
    with pytest.raises(ValueError, match="unknown progress mode 'fancy'"):
        make_progress_reporter("fancy")


def test_cancel_from_another_thread_stops_the_loop(tmp_path):
    token = CancelToken()
    started = threading.Event()

    def step_fn(step):
        started.set()
        token.wait(5.0)  # the GUI thread cancels while a step runs
        return None

    canceller = threading.Thread(target=lambda: (started.wait(5.0), token.cancel("dialog closed")))
    canceller.start()
    with pytest.raises(TrainingCancelled, match="cancelled at step 1/100 \\(dialog closed\\)"):
        run_training(step_fn, total_steps=100, checkpoint_path=tmp_path / "t.pt", checkpoint_every=50,
                     state_dict_fn=lambda: {"model_state": {}}, load_state_fn=lambda c: None,
                     config={}, kind="toy", cancel=token)
    canceller.join()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_cancel_on_signals_turns_sigint_into_a_cancel():
    before = signal.getsignal(signal.SIGINT)
    token = CancelToken()
    with cancel_on_signals(token):
        signal.raise_signal(signal.SIGINT)
        assert token.is_cancelled() and token.reason == "signal SIGINT"
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(TrainingCancelled):
        token.raise_if_cancelled(3, 10)
