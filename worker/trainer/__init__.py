"""The engine, run in a child process: spec -> net, data on the device, the loop, metrics."""
