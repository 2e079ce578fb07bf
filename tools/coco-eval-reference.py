#!/work/pyenv/bin/python
"""Reference numbers for headstart's COCO detection metrics, computed with pycocotools' COCOeval.

Writes JSON: a few seeded cases (images, ground-truth boxes with crowd regions and COCO `area`s,
scored detections) and what COCOeval says about them: the 12 summary numbers, per-class AP / AP50 /
AP75 / AR@100 (area all) and the precision-recall curve at IoU 0.5 per class. The cases cover every
area range, crowd regions, score ties, a class with no ground truth, a class never detected, images
with no boxes, and an image with more than 100 detections. test/detector-eval.test.ts compares
src/detector/coco-eval.ts against the committed output, so CI needs no Python. Regenerate with:

    /work/pyenv/bin/python tools/coco-eval-reference.py > test/fixtures/detection/cocoeval-reference.json
"""
import contextlib
import io
import json

import numpy as np
import pycocotools
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

WIDTH, HEIGHT = 640, 480


def round2(v):
    return float(np.round(v, 2))


def make_case(name, seed, n_images, classes, crowd_rate, detect_rate, fp_per_image, tie_grid=None, crowded_image=False, undetected_class=None):
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    ann_id = 1
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": WIDTH, "height": HEIGHT})
        n_gt = int(rng.integers(0, 6)) if image_id % 7 else 0
        for _ in range(n_gt):
            # Log-uniform sides: small (< 32²), medium and large (> 96²) areas all occur.
            w = float(np.exp(rng.uniform(np.log(6), np.log(300))))
            h = float(w * np.exp(rng.uniform(-0.5, 0.5)))
            x = float(rng.uniform(0, WIDTH - w)) if w < WIDTH else 0.0
            y = float(rng.uniform(0, HEIGHT - h)) if h < HEIGHT else 0.0
            w, h = min(w, WIDTH - x), min(h, HEIGHT - y)
            crowd = int(rng.random() < crowd_rate)
            category = int(rng.integers(1, len(classes)))  # the last class never has ground truth
            box = [round2(x), round2(y), round2(w), round2(h)]
            # A segmentation's area is smaller than its box's: COCO judges small/medium/large by it.
            area = round2(w * h * rng.uniform(0.55, 1.0))
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": category, "bbox": box, "area": area, "iscrowd": crowd})
            ann_id += 1
            if category != undetected_class and rng.random() < detect_rate:
                for _ in range(1 + int(crowd) * 2):
                    jitter = rng.normal(0, 0.06, size=4)
                    dx, dy = x + jitter[0] * w, y + jitter[1] * h
                    dw, dh = w * np.exp(jitter[2]), h * np.exp(jitter[3])
                    label = category if rng.random() < 0.85 else int(rng.integers(1, len(classes) + 1))
                    score = rng.uniform(0.3, 1.0)
                    results.append({"image_id": image_id, "category_id": label, "bbox": [round2(dx), round2(dy), round2(dw), round2(dh)], "score": score})
        n_fp = int(rng.poisson(fp_per_image)) + (130 if crowded_image and image_id == 3 else 0)
        for _ in range(n_fp):
            w = float(np.exp(rng.uniform(np.log(5), np.log(250))))
            h = float(w * np.exp(rng.uniform(-0.5, 0.5)))
            x, y = float(rng.uniform(0, WIDTH - 5)), float(rng.uniform(0, HEIGHT - 5))
            label = int(rng.integers(1, len(classes) + 1))
            if label == undetected_class:
                label = 1
            results.append({"image_id": image_id, "category_id": label, "bbox": [round2(x), round2(y), round2(w), round2(h)], "score": rng.uniform(0.0, 0.7)})
    for r in results:
        r["score"] = float(np.round(r["score"] * tie_grid) / tie_grid) if tie_grid else float(r["score"])
    categories = [{"id": i + 1, "name": c} for i, c in enumerate(classes)]
    return {"name": name, "classes": classes, "images": images, "annotations": annotations, "categories": categories, "results": results}


def reference(case):
    gt = COCO()
    gt.dataset = {"images": case["images"], "annotations": case["annotations"], "categories": case["categories"]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(case["results"])
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    recall = ev.eval["recall"]  # [T, K, A, M]

    def mean_valid(values):
        values = values[values > -1]
        return float(np.mean(values)) if values.size else -1.0

    per_class = []
    for k, name in enumerate(case["classes"]):
        per_class.append({
            "name": name,
            "AP": mean_valid(precision[:, :, k, 0, 2]),
            "AP50": mean_valid(precision[0, :, k, 0, 2]),
            "AP75": mean_valid(precision[5, :, k, 0, 2]),
            "AR100": mean_valid(recall[:, k, 0, 2]),
            "pr50": [float(v) for v in precision[0, :, k, 0, 2]],
        })
    names = ["mAP", "mAP50", "mAP75", "APsmall", "APmedium", "APlarge", "AR1", "AR10", "AR100", "ARsmall", "ARmedium", "ARlarge"]
    return {"stats": dict(zip(names, [float(s) for s in ev.stats])), "perClass": per_class}


def main():
    cases = [
        make_case("mixed", 1, 40, ["person", "dog", "cat", "kite"], crowd_rate=0.06, detect_rate=0.8, fp_per_image=3, crowded_image=True, undetected_class=3),
        make_case("ties", 2, 25, ["ant", "bee", "wasp"], crowd_rate=0.1, detect_rate=0.7, fp_per_image=2, tie_grid=10),
        make_case("sparse", 3, 12, ["a", "b"], crowd_rate=0.0, detect_rate=0.5, fp_per_image=0.5),
    ]
    for case in cases:
        case["reference"] = reference(case)
    json.dump({"pycocotools": getattr(pycocotools, "__version__", "2.x"), "numpy": np.__version__, "cases": cases}, __import__("sys").stdout)


main()
