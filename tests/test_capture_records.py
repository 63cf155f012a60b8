from avi_core.latent.capture import dataset_capture_metadata, make_record


def _record(step, timestep, sigma, seed=7):
    return make_record(
        step=step,
        steps=50,
        sigma=sigma,
        timestep=timestep,
        num_timesteps=1000,
        scale_factor=0.18215,
        seed=seed,
        batch=2,
        sampler="euler",
        scheduler="normal",
        shape=(2, 4, 8, 8),
    )


def test_dataset_metadata_comes_from_the_first_valid_pair():
    good = {"x": _record(10, 795, 4.99), "z": _record(24, 510, 1.67)}
    records = [{"x": {"step": "broken"}, "z": {}}, [good], {"original": _record(5, 900, 9.0), "target": good["z"]}]
    meta = dataset_capture_metadata(records)
    assert meta["x_timestep"] == 795 and meta["z_timestep"] == 510
    assert meta["x_step"] == 10 and meta["z_step"] == 24 and meta["scale_factor"] == 0.18215


def test_dataset_metadata_without_usable_records_is_empty():
    assert dataset_capture_metadata([]) == {}
    assert dataset_capture_metadata([{"x": {}, "z": {}}, "junk", [None]]) == {}
