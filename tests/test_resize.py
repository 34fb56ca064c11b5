"""imresize against hand-computed MATLAB values, and numpy/torch agreement."""

import numpy as np
import pytest
import torch

from kakudai.ops.resize import contributions, cubic, imresize, output_size


def test_cubic_kernel_values():
    # Keys a = -0.5, computed by hand.
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])
    want = [1.0, 0.8671875, 0.5625, 0.2265625, 0.0, -0.0703125, -0.0625, -0.0234375, 0.0, 0.0]
    np.testing.assert_allclose(cubic(x), want, atol=0)
    np.testing.assert_allclose(cubic(-x), want, atol=0)


def test_output_size_rule():
    assert output_size((5, 7), 0.5)[0] == (3, 4)  # ceil(2.5), ceil(3.5)
    assert output_size((10, 10), 1 / 3)[0] == (4, 4)  # ceil(3.33)
    assert output_size((30, 30), 0.1)[0] == (3, 3)  # not 4 from 0.1*30 round-off
    assert output_size((4, 6), 1.7)[0] == (7, 11)  # ceil(6.8), ceil(10.2)
    assert output_size((10, 20), size=(5, None))[0] == (5, 10)
    assert output_size((10, 20), size=(5, 7)) == ((5, 7), (0.5, 0.35))


def test_upscale_weights_and_symmetric_boundary():
    # x2 up, first output pixel: u = 0.75; taps at 1-based -1..2 with weights
    # cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25); -1 and 0 mirror to 2 and 1.
    w, idx = contributions(4, 8, 2.0)
    assert idx[0].tolist()[:4] == [1, 0, 0, 1]
    np.testing.assert_allclose(w[0][:4], [-0.0234375, 0.2265625, 0.8671875, -0.0703125])
    out = imresize(np.array([[1.0, 2.0, 3.0, 4.0]]), scale=(1, 2))
    assert out.shape == (1, 8)
    assert out[0, 0] == pytest.approx(1.09375 * 1 - 0.09375 * 2)


def test_downscale_antialiased_weights():
    # x1/2: kernel stretched to width 8, weights 0.5 * cubic(d / 2); ramp 0..7.
    w, idx = contributions(8, 4, 0.5)
    np.testing.assert_allclose(w[0], 0.5 * np.array(
        [-0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375]))
    assert idx[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]
    out = imresize(np.arange(8.0)[None, :], scale=(1, 0.5))
    assert out[0, 0] == pytest.approx(0.44921875)
    # Without antialiasing MATLAB uses the plain kernel.
    w_na, _ = contributions(8, 4, 0.5, antialias=False)
    assert w_na.shape[1] == 4


def test_constant_image_stays_constant_and_rows_sum_to_one():
    img = np.full((13, 17, 3), 0.3)
    for s in (0.25, 1 / 3, 0.4, 1.7, 3):
        np.testing.assert_allclose(imresize(img, s), 0.3, atol=1e-12)
    w, _ = contributions(11, 4, 4 / 11)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 1 / 2.5, 1.7, 3])
@pytest.mark.parametrize("shape", [(31, 45), (64, 50), (17, 23)])
def test_numpy_and_torch_paths_agree(scale, shape):
    rng = np.random.default_rng(0)
    img = rng.random(shape + (3,))
    ref = imresize(img, scale)
    t = torch.from_numpy(img.transpose(2, 0, 1)).float()[None]
    got = imresize(t, scale)[0].permute(1, 2, 0).double().numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_gray_and_batch_layouts():
    rng = np.random.default_rng(1)
    g = rng.random((20, 30))
    out = imresize(g, 0.5)
    assert out.shape == (10, 15)
    b = torch.rand(2, 1, 20, 30, dtype=torch.float64)
    ob = imresize(b, 0.5)
    assert ob.shape == (2, 1, 10, 15)
    np.testing.assert_allclose(ob[1, 0].numpy(), imresize(b[1, 0].numpy(), 0.5), atol=1e-12)


def test_non_square_scales_resize_smaller_scale_first():
    # MATLAB resizes the dimension with the smaller scale first; with the
    # antialiased kernel the order matters, so check against a manual order.
    rng = np.random.default_rng(2)
    img = rng.random((24, 24))
    out = imresize(img, (2.0, 0.5))
    cols_first = imresize(imresize(img, (1.0, 0.5)), (2.0, 1.0))
    np.testing.assert_allclose(out, cols_first, atol=1e-12)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), scale=-1)
