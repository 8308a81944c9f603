"""Integrations that feed other systems from the store (store-and-forward): ``mqtt_sink`` (the MQTT service, over
the MQTT 3.1.1 client ``mqtt``; ``mqtt_control``: discovery, commands, health, status, loaded only while used) and
``webhook`` (signed JSON POSTs over ``httpc``; ``webhook_settings``: settings and status), both reading the store
through ``outbox`` (which also builds the message sent for a row). Imported only when enabled."""
