"""Beyond one process: Dask arrays in the API, Dask clusters for the CLI.

Everything here needs the optional ``jaccli[dask]`` extra (dask, distributed,
zarr) and is imported only when a run asks for it, so jaccli without the
extra behaves exactly as before.
"""
