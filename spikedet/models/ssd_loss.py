"""The SSD training loss (Liu et al., 2016), as torchvision's SSD computes it.

Anchors are matched to ground truth with torchvision's ``SSDMatcher`` (IoU ≥ 0.5, plus each box's best
anchor); matched anchors regress the encoded box (smooth L1) and classify its class, and the hardest
background anchors, three per matched one in each image, classify background (cross-entropy). Both terms are
divided by the number of matched anchors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxCoder, SSDMatcher
from torchvision.ops import box_iou

__all__ = ["SSDLoss"]


class SSDLoss:
    """``loss(head_output, targets) → (total, {"box": ..., "cls": ...})``.

    ``head_output`` is the train-mode output of :class:`~spikedet.models.ssd.SSDQCFS` (``bbox_regression``
    ``[N, A, 4]``, ``cls_logits`` ``[N, A, 1 + nc]``, ``anchors`` ``[A, 4]``); ``targets`` holds per image
    ``boxes`` (``xyxy`` input pixels) and ``labels`` (0-based class indices).
    """

    def __init__(self, box_coder: BoxCoder, iou_threshold: float = 0.5, neg_to_pos: int = 3) -> None:
        self.box_coder = box_coder
        self.matcher = SSDMatcher(iou_threshold)
        self.neg_to_pos = neg_to_pos

    def match(self, anchors: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image and anchor: the class to learn (0: background) and the encoded box to regress."""
        classes, boxes = [], []
        for target in targets:
            gt, labels = target["boxes"], target["labels"]
            if gt.numel() == 0:
                classes.append(torch.zeros(len(anchors), dtype=torch.long, device=anchors.device))
                boxes.append(torch.zeros_like(anchors))
                continue
            idx = self.matcher(box_iou(gt, anchors))
            matched = idx >= 0
            classes.append(torch.where(matched, labels[idx.clamp(min=0)] + 1, 0))
            boxes.append(self.box_coder.encode_single(gt[idx.clamp(min=0)], anchors))
        return torch.stack(classes), torch.stack(boxes)

    def __call__(
        self, output: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        regression, logits = output["bbox_regression"].float(), output["cls_logits"].float()
        classes, box_targets = self.match(output["anchors"].float(), targets)
        foreground = classes > 0
        matched = foreground.sum().clamp(min=1)
        box_loss = F.smooth_l1_loss(regression[foreground], box_targets[foreground], reduction="sum")
        ce = F.cross_entropy(logits.flatten(0, 1), classes.flatten(), reduction="none").view_as(classes)
        # hard negative mining: rank the background anchors of each image by their loss
        background = ce.masked_fill(foreground, -float("inf"))
        rank = background.argsort(1, descending=True).argsort(1)
        hard = rank < self.neg_to_pos * foreground.sum(1, keepdim=True)
        cls_loss = ce[foreground].sum() + ce[hard & ~foreground].sum()
        box_loss, cls_loss = box_loss / matched, cls_loss / matched
        return box_loss + cls_loss, {"box": float(box_loss.detach()), "cls": float(cls_loss.detach())}
