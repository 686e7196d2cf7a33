"""What every process needs: settings, logs, metrics, the operational HTTP face, outages, crypto."""
