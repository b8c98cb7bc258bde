"""What a run measures: query-document pairs, seeded token-length workloads, a user's own data file, how one
predict call splits its pairs into batches (``batch_plans``), and hypothesis strategies for pair sets."""
