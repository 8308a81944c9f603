"""Integrations that feed other systems from the store (store-and-forward): ``mqtt_sink`` (the MQTT service;
``mqtt_cold``: discovery, commands, health, status, loaded only while used) and ``webhook`` (signed JSON POSTs
over ``httpc``; ``webhook_cold``: settings and status), both reading the store through ``outbox`` (which also
builds the message sent for a row). Imported only when enabled."""
