"""Consumers written exactly the way PACER's developer guide documents them (kombu-style callbacks,
`super().__init__(dashboard_message_type=...)`, a tasks module given `self.logger`). The only line
that differs from a consumer of PACER's own base class is the import of `PACERConsumer`."""
