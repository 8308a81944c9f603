"""The time-series store on flash: ``core`` writes, recovers and retains (always loaded); ``export`` reads,
decimates, streams .npy/CSV and keeps labels (imported only when a request needs it)."""
