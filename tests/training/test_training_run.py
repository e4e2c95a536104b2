"""A real training run in-process: dataset from captions, the trainer child, the LoRA it registers."""

from pathlib import Path

import pytest
from django.conf import settings
from safetensors import safe_open

from generation.models import Lora, LoraProvenance
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from tests.training.helpers import QUICK
from training import logs
from training.models import TrainingRun
from training.services import runs

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_trains_a_lora_and_registers_it(tiny_model, captioned_album, training_config, admin_user):
    training_config(min_captioned_images=3)
    album = captioned_album(3, uncaptioned=1, manual_on=0)
    run = runs.start_training_run(
        user=admin_user,
        name="Kite style",
        albums=[album],
        model=tiny_model,
        trigger_words="kitestyle",
        parameters={**QUICK, "save_every_steps": 2},
    )
    jobs.run_job(TrainingRun, run.pk, runs.run_training)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error_message
    assert (run.progress_current, run.progress_total) == (3, 3)
    assert (run.captioned_images, run.uncaptioned_images, run.manual_captions) == (3, 1, 1)
    assert run.final_loss is not None and run.latest_loss is not None and run.device == "cpu"
    lora = run.lora
    assert lora.provenance == LoraProvenance.TRAINED and lora.source_id == run.pk
    assert lora.trigger_word_list == ["kitestyle"] and lora.family == tiny_model.family
    with safe_open(lora.file.path, framework="pt") as handle:
        keys = list(handle.keys())
    assert keys and all(k.startswith("unet.") for k in keys)
    assert [c.step for c in run.checkpoints.all()] == [2]
    chunk = logs.read_log(run, 0)
    assert any("step 3/3" in line for line in chunk.lines)
    assert not list((Path(settings.IMAGINEER_TRAINING_DIR) / "scratch").glob(f"run-{run.pk}-*"))
    assert Lora.objects.count() == 1
