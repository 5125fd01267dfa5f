"""The headless trainer: data, packing, the Accelerate/PEFT loop, checkpoints, event sinks."""
