"""amtsbote procedures, building blocks, routing and the CLI — the only package that imports Prefect."""
