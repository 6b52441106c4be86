"""The models: the networks (`nets`), the LightningModule that trains them (`module`), and the
classical reference (`classical`)."""
