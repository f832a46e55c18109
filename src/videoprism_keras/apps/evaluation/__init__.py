"""Measuring a model the paper's way, on the paper's benchmarks or your own data.

One stage per module, in the order a run goes through them:

    datasets, adapters   annotation files → `Dataset` (clips, captions/labels/moments,
                         what is missing on disk)
    cache, cache_clips   clips and texts → embeddings, kept in LanceDB per (model, dataset)
    retrieval            text↔video ranks → R@k, median and mean rank
    classification       zero-shot prompts → top-k, mean per-class accuracy, mAP
    probe                frozen features → an attentive and a linear probe
    grounding            window curves → moments, R@1 at IoU, mIoU (Charades-STA)
    metrics              the metric code all of them report through (numpy only)
    results, report      one JSON record per (model, dataset, task); records → a table
                         beside the published numbers (`published`)

`videoprism eval` is the same from the shell (docs/evaluation.md).
"""
