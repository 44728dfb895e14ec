"""Searching for better merges, all on top of the merge core and the same job runners.

    runners.py  inline, process-pool and Ray runners shared by every search
    evolve/     CMA-ES over recipe values (PS) and the layer path (DFS)
    breed/      top-k greedy merging over a pool, with kinship-guided exploration
    soup.py     uniform and greedy model soups
"""
