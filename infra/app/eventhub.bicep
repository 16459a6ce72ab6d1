// One event hub and, unless it is the built-in $Default, its consumer group.
param namespaceName string
param hubName string
@minValue(1)
@maxValue(32)
param partitions int
@minValue(1)
@maxValue(168)
param retentionHours int
@description('Consumer group of the reading function; empty or $Default creates none.')
param consumerGroup string = ''

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: namespaceName
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: hubName
  properties: {
    partitionCount: partitions
    retentionDescription: {
      cleanupPolicy: 'Delete'
      retentionTimeInHours: retentionHours
    }
  }
}

resource group 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = if (!empty(consumerGroup) && toLower(consumerGroup) != '$default') {
  parent: hub
  name: empty(consumerGroup) ? 'unused' : consumerGroup
}

output name string = hub.name
