"""amtsbote procedures, building blocks, routing and the CLI.

The only package that imports Prefect (imports go flows → connectors → xoev, never back).
"""
