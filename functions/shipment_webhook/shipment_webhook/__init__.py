"""POST /shipments/events: logistics providers that can only call HTTP put ShipmentStatusChanged events on the
`logistics` EventBridge bus, authenticated by the project's HMAC request signature."""
