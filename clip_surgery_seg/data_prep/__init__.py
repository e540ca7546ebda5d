"""Getting the datasets ready: download, safe extraction, label conversion (checks: ``datasets.check``).

Modules: ``download`` (resumable, verified HTTP), ``archives`` (safe selective extraction),
``convert`` (label files to the datasets' encodings), ``prepare`` (one recipe per dataset). The
archives, their URLs and published checksums are in the dataset catalogue
(``clip_surgery_seg.datasets.catalog``). Nothing heavy is imported here.
"""
