"""The time-series store on flash: ``core`` writes and retains (always loaded); ``recover`` opens it after a
(re)start (once per boot); ``export`` reads, decimates and streams .npy/CSV/JSON, ``meta`` keeps the labels,
``figures`` lists the resources (each imported only while a request needs it)."""
