"""The bundled PixelRefer trainer: config, model, shard loader, optimiser, distribution, checkpoints."""
