"""The multi-task loss on tiny hand-made tensors."""

import math

import pytest

torch = pytest.importorskip("torch")

from facelite.train.loss import LossWeights, multibox_loss  # noqa: E402


def make(n=8):
    labels = torch.zeros(1, n, dtype=torch.long)
    labels[0, 0] = 1
    box_t = torch.zeros(1, n, 4)
    lmk_t = torch.zeros(1, n, 10)
    mask = torch.zeros(1, n, dtype=torch.bool)
    return labels, box_t, lmk_t, mask


def test_perfect_prediction_has_near_zero_loss():
    labels, box_t, lmk_t, mask = make()
    logits = torch.full((1, 8, 2), 0.0)
    logits[0, :, 0] = 20.0  # background everywhere
    logits[0, 0] = torch.tensor([0.0, 20.0])  # face at anchor 0
    out = multibox_loss(logits, box_t.clone(), lmk_t.clone(), labels, box_t, lmk_t, mask)
    assert float(out["total"]) < 1e-6


def test_hard_negative_mining_counts_three_negatives_per_positive():
    labels, box_t, lmk_t, mask = make(n=10)
    logits = torch.zeros(1, 10, 2)  # every anchor: CE = log 2
    out = multibox_loss(logits, box_t, lmk_t, labels, box_t, lmk_t, mask, LossWeights(neg_pos_ratio=3))
    # 1 positive + 3 hardest negatives, each log 2, divided by 1 positive
    assert float(out["cls"]) == pytest.approx(4 * math.log(2), rel=1e-5)


def test_mining_picks_the_hardest_negatives():
    labels, box_t, lmk_t, mask = make(n=6)
    logits = torch.zeros(1, 6, 2)
    logits[0, 0] = torch.tensor([0.0, 10.0])  # confident correct positive (CE ~ 0)
    logits[0, 1:, 0] = torch.tensor([10.0, 10.0, -2.0, 10.0, 10.0])  # anchor 3 is the one hard negative
    out = multibox_loss(logits, box_t, lmk_t, labels, box_t, lmk_t, mask, LossWeights(neg_pos_ratio=1))
    hard = torch.nn.functional.cross_entropy(logits[0, 3:4], torch.tensor([0]))
    pos = torch.nn.functional.cross_entropy(logits[0, 0:1], torch.tensor([1]))
    assert float(out["cls"]) == pytest.approx(float(hard + pos), rel=1e-5)


def test_smooth_l1_box_and_masked_landmarks():
    labels, box_t, lmk_t, mask = make()
    box_pred = box_t.clone()
    box_pred[0, 0, 0] = 0.5  # smooth-L1: 0.5 * 0.5^2 = 0.125
    box_pred[0, 3, 0] = 100.0  # a negative anchor: ignored
    lmk_pred = lmk_t.clone()
    lmk_pred[0, 0, 0] = 3.0  # no landmark label: masked out
    logits = torch.zeros(1, 8, 2)
    out = multibox_loss(logits, box_pred, lmk_pred, labels, box_t, lmk_t, mask)
    assert float(out["box"]) == pytest.approx(0.125)
    assert float(out["landmarks"]) == 0.0
    mask[0, 0] = True  # now it counts: |3| > 1 -> 3 - 0.5 = 2.5
    out = multibox_loss(logits, box_pred, lmk_pred, labels, box_t, lmk_t, mask)
    assert float(out["landmarks"]) == pytest.approx(2.5)
    assert float(out["total"]) == pytest.approx(2 * 0.125 + float(out["cls"]) + 2.5, rel=1e-5)


def test_loss_is_differentiable():
    labels, box_t, lmk_t, mask = make()
    logits = torch.zeros(1, 8, 2, requires_grad=True)
    box_pred = torch.ones(1, 8, 4, requires_grad=True)
    lmk_pred = torch.ones(1, 8, 10, requires_grad=True)
    mask[0, 0] = True
    multibox_loss(logits, box_pred, lmk_pred, labels, box_t, lmk_t, mask)["total"].backward()
    assert logits.grad.abs().sum() > 0 and box_pred.grad[0, 0].abs().sum() > 0 and lmk_pred.grad[0, 0].abs().sum() > 0
    assert box_pred.grad[0, 1:].abs().sum() == 0


def test_feature_distillation_is_zero_for_the_teachers_features_and_scale_free():
    from facelite.train.loss import FeatureAdapter, feature_distill_loss

    g = torch.Generator().manual_seed(0)
    teacher = [torch.rand(2, 8, s, s, generator=g) for s in (8, 4, 2)]
    adapter = FeatureAdapter(8, 8, 3)  # starts as the identity
    assert feature_distill_loss(adapter(teacher), teacher).item() == pytest.approx(0.0, abs=1e-6)
    student = [t + 0.1 * torch.randn(t.shape, generator=g) for t in teacher]
    loss = feature_distill_loss(adapter(student), teacher)
    scaled = feature_distill_loss([10 * s for s in adapter(student)], [10 * t for t in teacher])
    assert loss.item() > 0 and scaled.item() == pytest.approx(loss.item(), rel=1e-4)
    # mean over levels of MSE / mean square of the teacher, by hand
    by_hand = sum(((s - t) ** 2).mean() / (t**2).mean() for s, t in zip(student, teacher)) / 3
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    loss.backward()
    assert all(c.weight.grad is not None for c in adapter.convs)
    with pytest.raises(ValueError, match="differ"):
        feature_distill_loss([teacher[0]], [teacher[1]])
    assert FeatureAdapter(4, 8, 1)([torch.rand(1, 4, 2, 2)])[0].shape == (1, 8, 2, 2)  # other channel counts


def test_distillation_skips_landmark_rows_the_teacher_left_nan():
    from facelite.train.loss import distill_loss

    labels = torch.zeros(1, 4, dtype=torch.long)
    labels[0, :3] = 1  # three positives, none with labelled landmarks
    mask = torch.zeros(1, 4, dtype=torch.bool)
    logits = torch.zeros(1, 4, 2, requires_grad=True)
    pred = torch.zeros(1, 4, 10, requires_grad=True)
    target = torch.full((1, 4, 10), 0.5)
    target[0, 1] = float("nan")  # the teacher had no landmarks for anchor 1
    out = distill_loss(logits, pred, logits.detach(), target, labels, mask)
    # smooth-L1 of 0.5 per coordinate (0.5 * 0.5^2 = 0.125) x 10, averaged over the 2 finite rows
    assert out["landmarks"].item() == pytest.approx(1.25)
    assert out["cls"].item() == pytest.approx(0.0, abs=1e-6)  # student = teacher
    out["landmarks"].backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 1].abs().sum() == 0


def test_distillation_without_positives_leaves_the_labelled_faces_to_the_labels():
    from facelite.train.loss import distill_loss

    labels = torch.tensor([[1, 0, 0, -1]])  # a labelled face (a tiny one the teacher calls background)
    mask = torch.zeros(1, 4, dtype=torch.bool)
    student = torch.tensor([[[0.0, 3.0], [2.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    teacher = torch.tensor([[[3.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    lmk = torch.zeros(1, 4, 10)

    def kl(a: int) -> float:
        p, q = teacher[0, a].softmax(-1), student[0, a].softmax(-1)
        return float((p * (p.log() - q.log())).sum())

    every = distill_loss(student, lmk, teacher, lmk, labels, mask)["cls"].item()
    rest = distill_loss(student, lmk, teacher, lmk, labels, mask, positives=False)["cls"].item()
    assert every == pytest.approx(sum(kl(a) for a in range(4)), rel=1e-5)  # / 1 positive
    assert rest == pytest.approx(sum(kl(a) for a in (1, 2, 3)), rel=1e-5)  # ignored anchors keep theirs
    assert kl(0) > 1.0  # the case matters: the teacher disagrees with the label there


def test_ignored_anchors_are_neither_positive_nor_mined_negatives():
    labels, box_t, lmk_t, mask = make(n=6)
    labels[0, 3] = -1  # an ignore region where the student (rightly) sees a face
    logits = torch.zeros(1, 6, 2)
    logits[0, 0] = torch.tensor([0.0, 10.0])
    logits[0, 1:, 0] = torch.tensor([10.0, 10.0, -2.0, 10.0, 9.0])  # anchor 3 would be the hardest negative
    out = multibox_loss(logits, box_t, lmk_t, labels, box_t, lmk_t, mask, LossWeights(neg_pos_ratio=1))
    nxt = torch.nn.functional.cross_entropy(logits[0, 5:6], torch.tensor([0]))  # the next hardest instead
    pos = torch.nn.functional.cross_entropy(logits[0, 0:1], torch.tensor([1]))
    assert float(out["cls"]) == pytest.approx(float(nxt + pos), rel=1e-5)


def test_wing_loss_known_values_and_continuity():
    from facelite.train.loss import wing_loss

    x = torch.tensor([0.0, 0.1, -0.5, 1.0, 2.0, -3.0])
    got = wing_loss(x, torch.zeros(6), width=1.0, curvature=0.5)
    c = 1.0 - math.log(3.0)  # C = w - w ln(1 + w / eps)
    want = [0.0, math.log(1.2), math.log(2.0), 1.0 - c, 2.0 - c, 3.0 - c]
    assert got.tolist() == pytest.approx(want, rel=1e-6)
    inside = wing_loss(torch.tensor([1.0 - 1e-6]), torch.zeros(1), 1.0, 0.5)
    assert float(inside) == pytest.approx(math.log(3.0), abs=1e-5)  # continuous at |x| = width
    # the gradient of small errors: width / curvature at 0+, where smooth-L1's is 0
    p = torch.tensor([1e-4], requires_grad=True)
    wing_loss(p, torch.zeros(1), 1.0, 0.5).sum().backward()
    assert float(p.grad) == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(ValueError, match="curvature > 0"):
        wing_loss(x, x, 1.0, 0.0)


def test_wing_landmark_loss_changes_only_the_landmark_term():
    labels, box_t, lmk_t, mask = make()
    mask[0, 0] = True
    box_pred, lmk_pred = box_t.clone(), lmk_t.clone()
    box_pred[0, 0, 0] = 0.5
    lmk_pred[0, 0, :2] = torch.tensor([0.5, 2.0])
    logits = torch.zeros(1, 8, 2)
    smooth = multibox_loss(logits, box_pred, lmk_pred, labels, box_t, lmk_t, mask)
    wing = multibox_loss(logits, box_pred, lmk_pred, labels, box_t, lmk_t, mask, LossWeights(landmark_loss="wing"))
    assert float(smooth["landmarks"]) == pytest.approx(0.125 + 1.5)
    assert float(wing["landmarks"]) == pytest.approx(math.log(2.0) + 2.0 - (1.0 - math.log(3.0)), rel=1e-6)
    assert float(wing["box"]) == float(smooth["box"]) and float(wing["cls"]) == float(smooth["cls"])
    with pytest.raises(ValueError, match="landmark_loss"):
        multibox_loss(logits, box_pred, lmk_pred, labels, box_t, lmk_t, mask, LossWeights(landmark_loss="l2"))
