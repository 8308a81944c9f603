"""Host tools (CPython): the ``sensorbox`` CLI, the device bundle builder, datasets, training and pulling data."""
