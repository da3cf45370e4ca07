"""taas: training as a service. The API process; never imports torch or worker."""
