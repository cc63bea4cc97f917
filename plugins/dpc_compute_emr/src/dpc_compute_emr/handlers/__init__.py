"""Lambda handlers of dpc-compute-emr (bundled with the plugin into the Lambda asset)."""
