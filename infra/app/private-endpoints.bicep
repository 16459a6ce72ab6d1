// Private endpoints (with private DNS zones linked to the VNet) for every service the app reaches:
// storage blob/queue/table, both Event Hubs namespaces, Key Vault and Redis.
param location string
param tags object
param namePrefix string
param vnetId string
param subnetId string
param storageAccountId string
param eventHubsNamespaceId string
@description('Kafka namespace; empty with kafkaMode external.')
param kafkaNamespaceId string
param keyVaultId string
param redisId string

var blobZone = 'privatelink.blob.${environment().suffixes.storage}'
var queueZone = 'privatelink.queue.${environment().suffixes.storage}'
var tableZone = 'privatelink.table.${environment().suffixes.storage}'
var serviceBusZone = 'privatelink.servicebus.windows.net'
var vaultZone = 'privatelink.vaultcore.azure.net'
var redisZone = 'privatelink.redis.azure.net'
var zones = [
  blobZone
  queueZone
  tableZone
  serviceBusZone
  vaultZone
  redisZone
]

resource dnsZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for zone in zones: {
  name: zone
  location: 'global'
  tags: tags
}]

resource dnsLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (zone, i) in zones: {
  parent: dnsZones[i]
  name: 'vnet-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}]

module blob 'private-endpoint.bicep' = {
  name: 'pep-blob'
  params: {
    name: '${namePrefix}blob-${last(split(storageAccountId, '/'))}'
    location: location
    tags: tags
    subnetId: subnetId
    serviceId: storageAccountId
    groupId: 'blob'
    dnsZoneId: dnsZones[0].id
  }
}

module queue 'private-endpoint.bicep' = {
  name: 'pep-queue'
  params: {
    name: '${namePrefix}queue-${last(split(storageAccountId, '/'))}'
    location: location
    tags: tags
    subnetId: subnetId
    serviceId: storageAccountId
    groupId: 'queue'
    dnsZoneId: dnsZones[1].id
  }
}

module table 'private-endpoint.bicep' = {
  name: 'pep-table'
  params: {
    name: '${namePrefix}table-${last(split(storageAccountId, '/'))}'
    location: location
    tags: tags
    subnetId: subnetId
    serviceId: storageAccountId
    groupId: 'table'
    dnsZoneId: dnsZones[2].id
  }
}

module eventHubs 'private-endpoint.bicep' = {
  name: 'pep-eventhubs'
  params: {
    name: '${namePrefix}${last(split(eventHubsNamespaceId, '/'))}'
    location: location
    tags: tags
    subnetId: subnetId
    serviceId: eventHubsNamespaceId
    groupId: 'namespace'
    dnsZoneId: dnsZones[3].id
  }
}

module kafka 'private-endpoint.bicep' = if (!empty(kafkaNamespaceId)) {
  name: 'pep-kafka'
  params: {
    name: '${namePrefix}${last(split(kafkaNamespaceId, '/'))}'
    location: location
    tags: tags
    subnetId: subnetId
    serviceId: kafkaNamespaceId
    groupId: 'namespace'
    dnsZoneId: dnsZones[3].id
  }
}

module vault 'private-endpoint.bicep' = {
  name: 'pep-vault'
  params: {
    name: '${namePrefix}${last(split(keyVaultId, '/'))}'
    location: location
    tags: tags
    subnetId: subnetId
    serviceId: keyVaultId
    groupId: 'vault'
    dnsZoneId: dnsZones[4].id
  }
}

module redis 'private-endpoint.bicep' = {
  name: 'pep-redis'
  params: {
    name: '${namePrefix}${last(split(redisId, '/'))}'
    location: location
    tags: tags
    subnetId: subnetId
    serviceId: redisId
    groupId: 'redisEnterprise'
    dnsZoneId: dnsZones[5].id
  }
}
