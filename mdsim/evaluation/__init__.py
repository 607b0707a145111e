"""Evaluation: Dim-sim triplets, triplet scores for every combination of subspaces, reports.

Backend-free (NumPy, h5py for embeddings files, matplotlib's Agg canvas for
charts); never imports Keras. The usual call sequence::

    triplets = load_triplets("dimsim_clean.csv", min_agreement=0.9)
    embeddings = read_embeddings("model_embeddings.h5")
    result = evaluate(triplets, embeddings)          # a dict with stable keys
    write_report(result, "eval_out")                 # JSON, Markdown, radar PNG

The file formats and the result schema are in docs/evaluation.md.
"""

from mdsim.evaluation.embeddings import (
    ClipEmbeddings,
    EmbeddingSet,
    EmbeddingSource,
    check_layout,
    read_embeddings,
    track_embedding,
    write_embeddings,
)
from mdsim.evaluation.report import (
    compare_table,
    format_score,
    markdown_table,
    radar_chart,
    read_results,
    write_json,
    write_report,
)
from mdsim.evaluation.scores import (
    DISTANCES,
    bootstrap_ci,
    combination_correct,
    combination_matrix,
    combinations,
    competition_rank,
    cosine_similarity,
    evaluate,
    subspace_distances,
    subspace_sq_distances,
    triplet_correct,
    validate,
)
from mdsim.evaluation.triplets import (
    TRIPLET_COLUMNS,
    SelectionReport,
    TripletTable,
    Triplets,
    generate_triplets,
    load_triplets,
    read_triplets,
    select_triplets,
    write_triplets,
)

__all__ = [
    "TRIPLET_COLUMNS", "SelectionReport", "TripletTable", "Triplets", "generate_triplets", "load_triplets",
    "read_triplets", "select_triplets", "write_triplets",
    "ClipEmbeddings", "EmbeddingSet", "EmbeddingSource", "check_layout", "read_embeddings", "track_embedding",
    "write_embeddings",
    "DISTANCES", "bootstrap_ci", "combination_correct", "combination_matrix", "combinations", "competition_rank",
    "cosine_similarity", "evaluate", "subspace_distances", "subspace_sq_distances",
    "triplet_correct", "validate",
    "compare_table", "format_score", "markdown_table", "radar_chart", "read_results", "write_json", "write_report",
]
