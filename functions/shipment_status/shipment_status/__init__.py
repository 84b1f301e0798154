"""UI Update Based on Data Changes (pattern 5): ShipmentStatusChanged events from the `logistics` bus become
`Shipment__c` upserts and `Shipment_Status__e` platform events that a Lightning page shows live."""
