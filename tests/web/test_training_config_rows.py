"""The experiment page's configuration card: only the settings that apply, readable values."""

from __future__ import annotations

from app.services.experiments import default_config
from app.web.training import config_rows


def test_rows_hide_settings_that_do_not_apply_and_say_which_weights_were_used() -> None:
    config = default_config("classification")
    config.update(optimizer="adamw", scheduler="cosine", ema=False, pretrained=True)
    rows = dict(config_rows(config, "random-init"))
    assert "momentum" not in rows and "step_size" not in rows and "gamma" not in rows
    assert "ema_decay" not in rows and "warmup_epochs" in rows
    assert rows["pretrained"] == "if found locally; used: random initialisation"
    assert rows["deterministic"] in {"yes", "no"} and "True" not in rows.values()
    assert rows["augment.hflip"] == "no"

    config.update(optimizer="sgd", scheduler="step", ema=True)
    rows = dict(config_rows(config, None))
    assert {"momentum", "step_size", "gamma", "ema_decay"} <= set(rows)
    assert "warmup_epochs" not in rows
    assert rows["pretrained"].endswith("not trained yet")
