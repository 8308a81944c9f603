"""The device's analysis: the pipeline service (``pipeline``), its models on flash (``models``) and their tree
evaluator (``trees``), the sound level meter (``soundmeter``) and the sound classifier (``soundclass``)."""
