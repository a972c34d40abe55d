"""Source adapters: one module per public dataset, converting its native release into `schemas.Sample`.

`sources.base` holds the adapter contract; each adapter also writes a native-layout fixture.
"""
