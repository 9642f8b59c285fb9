"""NPY headers and NPZ archives written as NumPy writes them, without copying the data.

``write_npz`` writes the bytes ``np.savez`` writes (stored, uncompressed zip64
entries ``<name>.npy``, each an NPY header and the array's memory), but each
array, or each block of rows of one gathered chunk by chunk, goes to the file
straight from its memory: ``np.savez`` copies every array on its way to the
zip file, and a result held as its chunks needs no joining first.
"""

import io

import numpy as np


def npy_header(shape, dtype, fortran_order=False):
    """The NPY header of an array, as ``np.save`` writes it: format 1.0, or 2.0 when
    the header does not fit 1.0's 65,535 bytes."""
    fields = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
              "fortran_order": bool(fortran_order), "shape": tuple(int(n) for n in shape)}
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buffer, fields)
    except ValueError:  # too long for 1.0
        buffer = io.BytesIO()
        np.lib.format.write_array_header_2_0(buffer, fields)
    return buffer.getvalue()


def array_entry(array):
    """(header, [data]) of ``array`` as ``np.save`` writes it: its memory in C order,
    or, Fortran-ordered, as it lies (the header says so)."""
    array = np.asanyarray(array)
    if array.dtype.hasobject:
        raise ValueError("an NPZ output holds no Python objects")
    fortran = array.flags.f_contiguous and not array.flags.c_contiguous
    data = array.T if fortran else np.ascontiguousarray(array)
    return npy_header(array.shape, array.dtype, fortran), [data]


def write_npz(handle, entries):
    """Write the archive of ``entries``, {name: (NPY header, [C-ordered arrays whose
    bytes follow one another])}, to the binary file ``handle``."""
    import zipfile  # when an NPZ is written, not at every start-up (it imports bz2, lzma)

    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for name, (header, blocks) in entries.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                entry.write(header)
                for block in blocks:
                    entry.write(memoryview(block.reshape(-1).view(np.uint8)))
