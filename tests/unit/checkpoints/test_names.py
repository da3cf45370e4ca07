from app.checkpoints.service import checkpoint_name


def test_checkpoint_names_say_epoch_once() -> None:
    assert checkpoint_name("epoch", 7) == "epoch 7"
    assert checkpoint_name("final", 10) == "final (epoch 10)"
    assert checkpoint_name("stop", 3) == "stop (epoch 3)"
